"""The bodies of ``kubectl buildkit create|ls|inspect|rm|prune|du``.

cli.py declares the flags and hands their values here. Parsing and formatting are pure
functions; the cluster (and gRPC, for inspect/prune/du) is imported only by the
commands that need it, so ``--help`` and bad flags stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubectl_build.console import Console
from kubectl_build.errors import BuilderError, ExitCode, UsageError

if TYPE_CHECKING:
    from kubectl_build.buildkit.client import BuildKitClient
    from kubectl_build.kube.builder import Builder, BuilderPod, BuilderSpec
    from kubectl_build.kube.config import Kube, KubeOptions

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")
_DURATION_NS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
                "d": 86400 * 10**9}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "ki": 2**10, "kib": 2**10, "m": 10**6, "mb": 10**6,
               "mi": 2**20, "mib": 2**20, "g": 10**9, "gb": 10**9, "gi": 2**30, "gib": 2**30,
               "t": 10**12, "tb": 10**12, "ti": 2**40, "tib": 2**40, "p": 10**15, "pb": 10**15}


@dataclass(frozen=True)
class PruneOptions:
    """What ``prune`` removes (the fields of BuildKit's PruneRequest)."""

    all: bool = False
    """Also remove cache that is still referenced by images (internal records too)."""
    keep_duration_ns: int = 0
    """Keep records used within this many nanoseconds."""
    keep_bytes: int = 0
    """Keep this much storage (BuildKit's reserved space)."""


# ---------------------------------------------------------------------------- parsing


def parse_duration(flag: str, text: str) -> int:
    """``90s``, ``1h30m``, ``7d`` -> nanoseconds (Go's duration syntax plus days)."""
    text = text.strip()
    if text.isdigit():
        return int(text) * 10**9
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise UsageError(f"invalid {flag} {text!r}", "use a duration such as 90s, 30m, 24h or 7d")
    return int(total)


def parse_size(flag: str, text: str) -> int:
    """``10GB``, ``512Mi``, ``1000000`` -> bytes."""
    match = _SIZE.match(text.strip())
    if not match or (match.group(2) or "").lower() not in _SIZE_UNITS:
        raise UsageError(f"invalid {flag} {text!r}", "use a size such as 512MB, 10GB or 20Gi")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])


def _read(flag: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {flag} {path}: {err.__class__.__name__}: {err}",
                         "pass a readable text file") from err


def spec_from_flags(flags: Mapping[str, Any], environ: Mapping[str, str]) -> BuilderSpec:
    """A validated BuilderSpec from ``create``'s flag values (files are read here)."""
    from kubectl_build.kube import builder_spec as bs

    custom_ca = _read("--custom-ca", flags["custom_ca"]) if flags.get("custom_ca") else None
    if custom_ca is not None and "-----BEGIN CERTIFICATE-----" not in custom_ca:
        raise UsageError(f"--custom-ca {flags['custom_ca']} holds no PEM certificate",
                         "pass a PEM file with -----BEGIN CERTIFICATE----- blocks")
    defaults = bs.BuilderSpec()
    spec = bs.BuilderSpec(
        name=bs.validate_name(flags.get("name") or bs.DEFAULT_NAME),
        image=flags.get("image") or defaults.image,
        replicas=int(flags.get("replicas") or 1),
        worker=flags.get("worker") or "auto",
        node_selector=bs.parse_pairs("--node-selector", flags.get("node_selector") or ()),
        tolerations=bs.parse_tolerations(flags.get("tolerations") or ()),
        requests=bs.parse_resources("--requests", flags.get("requests") or ()),
        limits=bs.parse_resources("--limits", flags.get("limits") or ()),
        service_account=flags.get("service_account") or None,
        config_toml=_read("--config", flags["config"]) if flags.get("config") else None,
        custom_ca=custom_ca,
        env=bs.parse_env(flags.get("env") or (), environ),
        runtime=flags.get("runtime") or "auto",
        containerd_sock=flags.get("containerd_sock") or defaults.containerd_sock,
        containerd_root=flags.get("containerd_root") or defaults.containerd_root,
        containerd_state=flags.get("containerd_state") or defaults.containerd_state,
        containerd_namespace=flags.get("containerd_namespace") or defaults.containerd_namespace,
        host_network=bool(flags.get("host_network")),
        cache_volume=flags.get("cache_size") or None,
        capabilities=tuple(c.upper().removeprefix("CAP_") for c in flags.get("cap_add") or ()),
    )
    return bs.frozen(bs.validate_spec(spec))


# ---------------------------------------------------------------------------- formatting


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns three spaces apart, as kubectl prints them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def age(created: str, now: datetime) -> str:
    """The time since `created` in kubectl's short form: 45s, 12m, 5h, 3d."""
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_bytes(size: int) -> str:
    """1234567 -> 1.23MB (decimal units, as buildctl du prints)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.2f}{unit}"
        value /= 1000
    return f"{size}B"


def ls_rows(builders: Sequence[Builder], now: datetime) -> list[list[str]]:
    """The ``ls`` table, header first."""
    rows = [["NAME", "NAMESPACE", "WORKER", "PODS", "NODES", "IMAGE", "AGE"]]
    for b in builders:
        nodes = ",".join(sorted({p.node for p in b.pods if p.node})) or "-"
        rows.append([b.name, b.namespace, b.worker, f"{len(b.ready_pods())}/{len(b.pods)}", nodes, b.image,
                     age(b.created, now)])
    return rows


# ---------------------------------------------------------------------------- commands


def _connect(options: KubeOptions) -> Kube:
    from kubectl_build.kube.config import connect

    return connect(options)


def create(options: KubeOptions, spec: BuilderSpec, console: Console, *, force: bool,
           timeout: float) -> int:
    """``kubectl buildkit create``."""
    from kubectl_build.kube.builder import create_builder

    kube = _connect(options)
    builder = create_builder(kube, spec, console, timeout=timeout, force=force)
    ready = builder.ready_pods()
    pods = ", ".join(f"{p.name} on {p.node}" for p in ready)
    console.info(f"builder {builder.name} is ready in namespace {builder.namespace} ({builder.worker} "
                 f"worker; {pods})")
    if len(ready) < builder.replicas:
        # Builds can start now; say why the rest may never come (one containerd pod per node).
        console.info(f"{len(ready)} of {builder.replicas} pods ready; the others are starting or cannot be "
                     f"scheduled: see `kubectl buildkit ls -n {builder.namespace}`")
    _remember_for_builds(options, kube, builder)
    console.result(builder.name)
    return ExitCode.OK


def _remember_for_builds(options: KubeOptions, kube: Kube, builder: Builder) -> None:
    """Save the warm entry a build would save after its first lookup.

    The first `kubectl build` after `create` then dials the new pod straight away
    (kube/warm.py).

    Only when the build would address the cluster the same way: a build has no
    --cluster or --user flag, so a builder created with them is left to the lookup.
    """
    from kubectl_build.errors import KubectlBuildError
    from kubectl_build.kube import warm
    from kubectl_build.kube.nodes import list_nodes
    from kubectl_build.run.cluster import summarise_nodes

    ready = sorted(builder.ready_pods(), key=lambda pod: pod.name)
    if not ready or options.cluster or options.user:
        return
    key = warm.cache_key(options.kubeconfig, options.context, options.namespace, builder.name)
    single = len({pod.node for pod in ready}) == 1
    entry = warm.WarmEntry(kube.namespace, ready[0].name, ready[0].container, builder.worker,
                           tuple(kube.kubectl_args), single, ready[0].node)
    try:
        # What a multi-platform build's plan lists: one call here saves that build the
        # kubernetes client import and its own calls.
        nodes = list_nodes(kube)
    except KubectlBuildError:
        nodes = ()
    warm.save(key, entry.with_nodes(summarise_nodes(nodes), ready[0].node) if nodes else entry)


def ls(options: KubeOptions, console: Console, *, all_namespaces: bool = False,
       now: datetime | None = None) -> int:
    """``kubectl buildkit ls [-A]``."""
    from kubectl_build.kube.builder import list_builders

    kube = _connect(options)
    builders = list_builders(kube, all_namespaces=all_namespaces)
    if not builders:
        console.info("no builders in any namespace" if all_namespaces
                     else f"no builders in namespace {kube.namespace}")
        return ExitCode.OK
    for line in table(ls_rows(builders, now or datetime.now(UTC))):
        console.result(line)
    return ExitCode.OK


def rm(options: KubeOptions, names: Sequence[str], console: Console, *, timeout: float,
       keep_cache: bool = False) -> int:
    """``kubectl buildkit rm``: every object goes, and its pods are waited for.

    A containerd worker's cache lives in the node's containerd (snapshots and content
    held by leases), not in any Kubernetes object: it is pruned first, so removing the
    builder leaves nothing behind on the nodes either, unless `keep_cache`.
    """
    from kubectl_build.kube.builder import find_builder, remove_builder

    kube = _connect(options)
    for name in names:
        builder = find_builder(kube, name)
        if builder is not None and builder.worker == "containerd" and not keep_cache:
            _release_node_cache(kube, builder, console)
        remove_builder(kube, name, timeout=timeout)
        console.info(f"removed builder {name} from namespace {kube.namespace}")
    return ExitCode.OK


def _release_node_cache(kube: Kube, builder: Builder, console: Console) -> None:
    from kubectl_build._proto import control_pb2
    from kubectl_build.errors import KubectlBuildError

    for pod in builder.ready_pods():
        try:
            with _client(kube, builder, pod) as client:
                removed = client.prune(control_pb2.PruneRequest(all=True), timeout=120)
        except KubectlBuildError as err:
            # Removal still goes ahead; the user learns what may be left on the node.
            console.info(f"warning: could not release the build cache of {pod.name} on {pod.node} "
                         f"({err.one_line()}); containerd keeps it until pruned")
            continue
        console.info(f"released {human_bytes(sum(r.size for r in removed))} of build cache on {pod.node}")


def _find(kube: Kube, name: str) -> Builder:
    from kubectl_build.kube.builder import find_builder

    builder = find_builder(kube, name)
    if builder is None:
        raise BuilderError(f"no builder {name} in namespace {kube.namespace}",
                           "list builders with `kubectl buildkit ls`, or create one with "
                           "`kubectl buildkit create`")
    return builder


@contextmanager
def _client(kube: Kube, builder: Builder, pod: BuilderPod) -> Iterator[BuildKitClient]:
    from kubectl_build.kube.transport import PodTarget, open_client

    target = PodTarget(builder.namespace, pod.name, pod.container)
    with open_client(target, kubectl_args=kube.kubectl_args, kube=kube) as client:
        yield client


def _each_ready(kube: Kube, builder: Builder, console: Console,
                action: Callable[[BuilderPod, BuildKitClient], None]) -> int:
    """Run `action` against every ready replica; pods that are not ready are named and skipped."""
    ready = builder.ready_pods()
    if not ready:
        raise BuilderError(f"builder {builder.name} has no ready pod",
                           f"see `kubectl -n {builder.namespace} get pods -l "
                           f"kubectl-build.dev/builder={builder.name}`")
    for pod in builder.pods:
        if not pod.ready:
            console.info(f"warning: skipping pod {pod.name} of builder {builder.name}: not ready "
                         f"({pod.phase})")
    for pod in ready:
        with _client(kube, builder, pod) as client:
            action(pod, client)
    return ExitCode.OK


def inspect(options: KubeOptions, name: str, console: Console) -> int:
    """``kubectl buildkit inspect NAME``: pods, nodes, buildkitd version and worker platforms."""
    kube = _connect(options)
    builder = _find(kube, name)
    for key, value in (("Name", builder.name), ("Namespace", builder.namespace), ("Kind", builder.kind),
                       ("Worker", builder.worker), ("Image", builder.image),
                       ("Pods", f"{len(builder.ready_pods())}/{len(builder.pods)} ready")):
        console.result(f"{key + ':':<11}{value}")
    for pod in builder.pods:
        console.result("")
        console.result(f"Pod:       {pod.name}")
        console.result(f"Node:      {pod.node or '-'}")
        console.result(f"Status:    {pod.phase}{'' if pod.ready else ' (not ready)'}")
        if pod.ready:
            with _client(kube, builder, pod) as client:
                _describe_daemon(client, console)
    return ExitCode.OK


def _describe_daemon(client: BuildKitClient, console: Console) -> None:
    version = client.info().buildkit_version
    console.result(f"BuildKit:  {version.package} {version.version} {version.revision}".rstrip())
    for worker in client.list_workers():
        platforms = ", ".join(_platform(p) for p in worker.platforms)
        console.result(f"Worker:    {worker.labels.get('org.mobyproject.buildkit.worker.executor', '')} "
                       f"{worker.id}".rstrip())
        console.result(f"Platforms: {platforms}")


def _platform(p: Any) -> str:
    return "/".join(part for part in (p.os, p.architecture, p.variant) if part)


def prune(options: KubeOptions, name: str, prune_options: PruneOptions, console: Console) -> int:
    """``kubectl buildkit prune``: on every replica; prints the total reclaimed."""
    from kubectl_build._proto import control_pb2

    kube = _connect(options)
    builder = _find(kube, name)
    request = control_pb2.PruneRequest(all=prune_options.all, keep_duration=prune_options.keep_duration_ns,
                                       reserved_space=prune_options.keep_bytes)
    total = [0]

    def one(pod: BuilderPod, client: BuildKitClient) -> None:
        removed = client.prune(request)
        size = sum(r.size for r in removed)
        total[0] += size
        console.info(f"{pod.name} ({pod.node}): reclaimed {human_bytes(size)} in {len(removed)} records")

    _each_ready(kube, builder, console, one)
    console.result(f"Total: {human_bytes(total[0])}")
    return ExitCode.OK


def du(options: KubeOptions, name: str, console: Console) -> int:
    """``kubectl buildkit du``: cache size per replica and in total."""
    kube = _connect(options)
    builder = _find(kube, name)
    rows = [["POD", "NODE", "RECORDS", "SIZE", "RECLAIMABLE"]]
    totals = [0, 0]

    def one(pod: BuilderPod, client: BuildKitClient) -> None:
        records = client.disk_usage()
        size = sum(r.size for r in records)
        free = sum(r.size for r in records if not r.in_use)
        totals[0] += size
        totals[1] += free
        rows.append([pod.name, pod.node, str(len(records)), human_bytes(size), human_bytes(free)])

    _each_ready(kube, builder, console, one)
    rows.append(["TOTAL", "", "", human_bytes(totals[0]), human_bytes(totals[1])])
    for line in table(rows):
        console.result(line)
    return ExitCode.OK

"""What a builder should look like (BuilderSpec) and the parsing of its flags.

Pure: no Kubernetes client here. The flag syntaxes follow kubectl's own
(``k=v,k2=v2`` for selectors, Kubernetes quantities for resources) so nothing is new to
learn; every malformed value is a UsageError naming the flag and the bad part.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from kubectl_build.errors import UsageError

DEFAULT_NAME = "buildkit"
DEFAULT_IMAGE = "docker.io/moby/buildkit:v0.34.2"
WORKERS = ("auto", "containerd", "runc", "rootless")
RUNTIMES = ("auto", "containerd", "docker")


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})

# A builder's name becomes object names, label values and a host directory; pods of a
# StatefulSet append "-N" and a controller-revision hash label must stay under 63.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
_OPERATORS = ("Equal", "Exists")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class BuilderSpec:
    """A builder as the user asked for it; the defaults are what ``kubectl build`` auto-creates."""

    name: str = DEFAULT_NAME
    """Name of the Deployment/StatefulSet, its ConfigMap and label value."""
    image: str = DEFAULT_IMAGE
    """buildkitd image; for the rootless worker the default becomes its -rootless variant."""
    replicas: int = 1
    """Pods; with the containerd worker at most one per node (they share the node's store)."""
    worker: str = "auto"
    """auto|containerd|runc|rootless; auto is containerd where the nodes run containerd."""
    node_selector: Mapping[str, str] = field(default_factory=_empty)
    """Pod nodeSelector."""
    tolerations: tuple[Mapping[str, str], ...] = ()
    """Pod tolerations, each with the keys of a Kubernetes toleration (values as text)."""
    requests: Mapping[str, str] = field(default_factory=_empty)
    """Container resource requests (cpu, memory, ...)."""
    limits: Mapping[str, str] = field(default_factory=_empty)
    """Container resource limits."""
    service_account: str | None = None
    """Pod service account; None keeps the namespace default."""
    config_toml: str | None = None
    """Contents of a user buildkitd.toml (mirrors, insecure registries, GC)."""
    custom_ca: str | None = None
    """PEM CA bundle trusted by buildkitd for registries and git/http sources."""
    env: Mapping[str, str] = field(default_factory=_empty)
    """Container environment (HTTP(S)_PROXY, NO_PROXY...); never credentials."""
    runtime: str = "auto"
    """Node container runtime: auto|containerd|docker."""
    containerd_sock: str = "/run/containerd/containerd.sock"
    """The node's containerd socket (mounted at the same path)."""
    containerd_root: str = "/var/lib/containerd"
    """The node's containerd root; snapshots are mounted from it, so the path must match."""
    containerd_state: str = "/run/containerd"
    """The node's containerd state directory (task bundles, rootfs mounts)."""
    containerd_namespace: str = "k8s.io"
    """containerd namespace images land in; k8s.io is the one the kubelet uses."""
    docker_sock: str = "/var/run/docker.sock"
    """The node's Docker socket, mounted when the runtime is docker (image loading)."""
    host_network: bool = False
    """Run buildkitd in the node's network namespace, so registries that listen only on
    the node's loopback (node-local registries, mirrors) are reachable for pulls/pushes."""
    cache_volume: str | None = None
    """Size of a PersistentVolumeClaim per replica (runc/rootless; makes a StatefulSet)."""
    nodes: tuple[str, ...] = ()
    """Only these nodes (by name); set when the nodes' containerd paths differ."""
    capabilities: tuple[str, ...] = ()
    """Rootless worker: capabilities added to the container's bounding set. Some kernels
    let the setuid newuidmap write user-namespace maps only with SYS_ADMIN there."""


def validate_name(name: str) -> str:
    """Return `name` if it can name a builder, else raise UsageError."""
    if not _NAME.match(name):
        raise UsageError(
            f"invalid builder name {name!r}",
            "use 1-52 lower-case letters, digits and '-', starting and ending alphanumeric",
        )
    return name


def validate_spec(spec: BuilderSpec) -> BuilderSpec:
    """Check the choices that do not depend on the cluster; return the spec."""
    validate_name(spec.name)
    if spec.worker not in WORKERS:
        raise UsageError(f"invalid --worker {spec.worker!r}", f"use one of {', '.join(WORKERS)}")
    if spec.runtime not in RUNTIMES:
        raise UsageError(f"invalid --runtime {spec.runtime!r}", f"use one of {', '.join(RUNTIMES)}")
    if spec.replicas < 1:
        raise UsageError(f"invalid --replicas {spec.replicas}", "a builder needs at least one pod")
    if spec.worker == "containerd" and spec.runtime == "docker":
        raise UsageError("--worker containerd needs nodes whose runtime is containerd",
                         "use --worker runc with --runtime docker")
    if spec.cache_volume is not None:
        _quantity("--cache-size", "storage", spec.cache_volume)
        if spec.worker == "containerd":
            raise UsageError(
                "--cache-size does not apply to the containerd worker",
                "its cache already persists on the node (containerd's store and "
                "/var/lib/buildkit/NAMESPACE/NAME); use --worker runc for a volume",
            )
    if spec.config_toml is not None:
        parse_config(spec.config_toml)
    for cap in spec.capabilities:
        if not re.match(r"^[A-Z][A-Z_]*$", cap) or cap.startswith("CAP_"):
            raise UsageError(f"invalid --cap-add {cap!r}", "use a capability name such as SYS_ADMIN")
    if spec.capabilities and spec.worker not in ("auto", "rootless"):
        raise UsageError("--cap-add applies to the rootless worker only",
                         "the other workers run privileged, with every capability")
    return spec


def parse_config(text: str) -> dict[str, object]:
    """Parse a buildkitd.toml, raising UsageError that quotes TOML's own message."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"--config is not valid TOML: {err}", "fix the buildkitd.toml file") from err


def parse_pairs(flag: str, values: Iterable[str]) -> dict[str, str]:
    """Parse repeated ``k=v,k2=v2`` values (``--node-selector``) into a mapping of labels."""
    pairs: dict[str, str] = {}
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, val = item.partition("=")
            if not sep or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(val):
                raise UsageError(f"invalid {flag} {item!r}",
                                 "use KEY=VALUE with label syntax, comma-separated")
            pairs[key] = val
    return pairs


def parse_resources(flag: str, values: Iterable[str]) -> dict[str, str]:
    """Parse ``cpu=500m,memory=1Gi`` (``--requests``/``--limits``) into name -> quantity."""
    resources: dict[str, str] = {}
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, quantity = item.partition("=")
            if not sep or not _LABEL_KEY.match(key):
                raise UsageError(f"invalid {flag} {item!r}", "use NAME=QUANTITY, e.g. cpu=500m,memory=2Gi")
            resources[key] = _quantity(flag, key, quantity)
    return resources


def _quantity(flag: str, key: str, quantity: str) -> str:
    if not _QUANTITY.match(quantity):
        raise UsageError(f"invalid {flag} quantity {key}={quantity!r}",
                         "use a Kubernetes quantity such as 500m, 2, 512Mi or 10Gi")
    return quantity


def parse_tolerations(values: Iterable[str]) -> tuple[dict[str, str], ...]:
    """Parse ``key=k,operator=Equal,value=v,effect=NoSchedule;key=...`` (``--tolerations``)."""
    tolerations: list[dict[str, str]] = []
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(";"))):
            tolerations.append(_toleration(item))
    return tuple(tolerations)


def _toleration(item: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in item.split(","))):
        key, sep, val = part.partition("=")
        if not sep or key not in _TOLERATION_KEYS:
            raise UsageError(f"invalid --tolerations field {part!r}",
                             f"use {','.join(k + '=...' for k in _TOLERATION_KEYS)}; ';' between tolerations")
        fields[key] = val
    operator = fields.setdefault("operator", "Equal")
    if operator not in _OPERATORS:
        raise UsageError(f"invalid --tolerations operator {operator!r}", "use Equal or Exists")
    if operator == "Exists" and fields.get("value"):
        raise UsageError(f"invalid --tolerations {item!r}", "operator=Exists takes no value")
    if operator == "Equal" and not fields.get("key"):
        raise UsageError(f"invalid --tolerations {item!r}", "operator=Equal needs a key")
    if fields.get("effect", "") not in ("", *_EFFECTS):
        raise UsageError(f"invalid --tolerations effect {fields['effect']!r}",
                         f"use one of {', '.join(_EFFECTS)}")
    seconds = fields.get("tolerationSeconds")
    if seconds is not None and (not seconds.isdigit() or fields.get("effect") != "NoExecute"):
        raise UsageError(f"invalid --tolerations {item!r}",
                         "tolerationSeconds is a whole number and needs effect=NoExecute")
    return {k: v for k, v in fields.items() if v != ""}


def parse_env(values: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Parse ``--env K=V``; a bare ``K`` takes the client's value (handy for proxies)."""
    env: dict[str, str] = {}
    for item in values:
        key, sep, val = item.partition("=")
        if not _ENV_NAME.match(key):
            raise UsageError(f"invalid --env {item!r}", "use NAME=VALUE or a bare NAME from your environment")
        if not sep:
            if key not in environ:
                raise UsageError(f"--env {key} is not set in your environment", "use NAME=VALUE")
            val = environ[key]
        env[key] = val
    return env


_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def proxy_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The client's proxy variables, for a builder created on first use behind a proxy."""
    return {key: environ[key] for key in _PROXY_VARIABLES if environ.get(key)}


def first_use_spec(name: str, environ: Mapping[str, str]) -> BuilderSpec:
    """The spec `kubectl build` creates a missing builder from: defaults plus the proxies."""
    return frozen(BuilderSpec(name=name, env=proxy_env(environ)))


def frozen(spec: BuilderSpec) -> BuilderSpec:
    """The same spec with its mappings made read-only, so it is safely shareable."""
    return replace(
        spec,
        node_selector=MappingProxyType(dict(spec.node_selector)),
        tolerations=tuple(MappingProxyType(dict(t)) for t in spec.tolerations),
        requests=MappingProxyType(dict(spec.requests)),
        limits=MappingProxyType(dict(spec.limits)),
        env=MappingProxyType(dict(spec.env)),
    )


@dataclass(frozen=True)
class NodeFacts:
    """What a node tells about its container runtime."""

    runtime: str
    """``status.nodeInfo.containerRuntimeVersion``, e.g. ``containerd://1.7.24``."""
    labels: Mapping[str, str] = field(default_factory=_empty)
    annotations: Mapping[str, str] = field(default_factory=_empty)
    name: str = ""


# An admin can state where a node's containerd lives; builders created on first use
# (no flags) then fit nodes with non-standard paths.
NODE_ANNOTATIONS = {
    "containerd_sock": "kubectl-build.dev/containerd-sock",
    "containerd_root": "kubectl-build.dev/containerd-root",
    "containerd_state": "kubectl-build.dev/containerd-state",
}
# Distributions that move containerd (the gap behind bkcli #46/#47).
_K3S = {"containerd_sock": "/run/k3s/containerd/containerd.sock",
        "containerd_root": "/var/lib/rancher/k3s/agent/containerd", "containerd_state": "/run/k3s/containerd"}
_MICROK8S = {"containerd_sock": "/var/snap/microk8s/common/run/containerd.sock",
             "containerd_root": "/var/snap/microk8s/common/var/lib/containerd",
             "containerd_state": "/var/snap/microk8s/common/run/containerd"}


def containerd_paths(node: NodeFacts) -> dict[str, str]:
    """The node's containerd paths when they are not the standard ones (BuilderSpec fields)."""
    annotated = {name: node.annotations[key] for name, key in NODE_ANNOTATIONS.items()
                 if node.annotations.get(key)}
    if annotated:
        return annotated
    if "-k3s" in node.runtime or node.labels.get("node.kubernetes.io/instance-type") == "k3s":
        return dict(_K3S)
    if node.labels.get("microk8s.io/cluster") == "true":
        return dict(_MICROK8S)
    return {}


def resolve(spec: BuilderSpec, nodes: Sequence[NodeFacts] | None) -> BuilderSpec:
    """Settle ``auto`` runtime/worker, the rootless image and the nodes' containerd paths.

    Args:
        spec: The requested spec.
        nodes: The nodes the builder may run on, or None when unknown (the user may not
            list nodes).

    Returns:
        A spec whose worker and runtime are concrete (runtime may be ``other``); paths
        still at their defaults take the nodes' (annotations, k3s, microk8s) when all
        the nodes agree.
    """
    runtime = spec.runtime
    if runtime == "auto":
        runtime = _runtime_of(None if nodes is None else [n.runtime for n in nodes])
    worker = spec.worker
    if worker == "auto":
        worker = "containerd" if runtime == "containerd" else "runc"
    image = spec.image
    if worker == "rootless" and image == DEFAULT_IMAGE:
        image = DEFAULT_IMAGE + "-rootless"
    spec = replace(spec, runtime=runtime, worker=worker, image=image)
    return _node_paths(spec, nodes) if worker == "containerd" and nodes else spec


def _node_paths(spec: BuilderSpec, nodes: Sequence[NodeFacts]) -> BuilderSpec:
    defaults = BuilderSpec()
    if any(getattr(spec, name) != getattr(defaults, name) for name in NODE_ANNOTATIONS):
        return spec  # the user said where containerd is
    groups: dict[tuple[str, ...], list[str]] = {}
    for node in nodes:
        paths = containerd_paths(node)
        key = tuple(paths.get(name, getattr(defaults, name)) for name in NODE_ANNOTATIONS)
        groups.setdefault(key, []).append(node.name)
    # One pod template has one set of hostPaths: with nodes that differ, the builder
    # goes to the largest group of alike nodes (ties: the group of the first name).
    key, names = min(groups.items(), key=lambda item: (-len(item[1]), min(item[1])))
    spec = replace(spec, **dict(zip(NODE_ANNOTATIONS, key, strict=True)))  # type: ignore[arg-type]
    return replace(spec, nodes=tuple(sorted(names))) if len(groups) > 1 else spec


def _runtime_of(node_runtimes: Iterable[str] | None) -> str:
    if node_runtimes is None:
        return "unknown"
    kinds = {version.partition("://")[0] for version in node_runtimes}
    if len(kinds) == 1:
        kind = kinds.pop()
        return kind if kind in ("containerd", "docker") else "other"
    return "mixed" if kinds else "unknown"

"""Install binfmt_misc/QEMU emulators on the nodes a builder runs on.

A builder executes RUN steps of a foreign platform through the kernel's binfmt_misc
handlers, which are host-wide: one privileged pod per node running a binfmt installer
image (``tonistiigi/binfmt`` or a stand-in that takes the same arguments,
``--install arm64,riscv64``) registers them, with the F flag, so they keep working for
every container after the pod is gone. BuildKit probes emulators again on
``ListWorkers``, so the caller asks it afterwards what the builder can run now.

The pod is pinned to its node (``nodeName``: no scheduler, every taint tolerated),
carries no service-account token and never a Secret, has a deadline of its own in case
this client dies, and is always deleted, on failure and Ctrl-C too. The installer exits
0 even when a registration failed, so its log is read: ``installing: ARCH OK`` or
``installing: ARCH <error>`` lines, then a JSON status (``supported`` platforms, which it
finds by running a binary of each, and registered ``emulators``).

A cluster that refuses privileged pods (RBAC, Pod Security admission, a policy webhook)
is a BuilderError whose hint offers --mode cross/native or the command an admin can run.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubectl_build.errors import BuilderError, WaitTimeoutError
from kubectl_build.kube._api import as_json, call
from kubectl_build.kube.waiting import Problem, pod_problem, poll
from kubectl_build.platforms.matching import can_emulate, from_parts, serves_natively
from kubectl_build.platforms.platform import Platform

if TYPE_CHECKING:
    from kubectl_build.console import Console
    from kubectl_build.kube.builder import Builder
    from kubectl_build.kube.config import Kube

DEFAULT_IMAGE = "docker.io/tonistiigi/binfmt:latest"
CONTAINER = "binfmt"
LABEL_FOR = "kubectl-build.dev/emulators-for"
"""Label on installer pods: the builder they install for (never the builder label itself,
which would make them count as the builder's pods)."""
LABEL_RUN = "kubectl-build.dev/emulator-run"
"""Label on installer pods: one value per invocation, so it finds (and deletes) its own
pods, even one created just before a Ctrl-C, and never a concurrent invocation's."""
DEADLINE_MARGIN = 30
"""Seconds the pod may outlive the client's own timeout before the kubelet stops it."""

HANDLERS: Mapping[str, str] = {
    "amd64": "qemu-x86_64", "arm64": "qemu-aarch64", "arm": "qemu-arm", "386": "qemu-i386",
    "riscv64": "qemu-riscv64", "ppc64le": "qemu-ppc64le", "s390x": "qemu-s390x",
    "mips64le": "qemu-mips64el", "mips64": "qemu-mips64", "loong64": "qemu-loongarch64",
}
"""binfmt_misc handler names (``/proc/sys/fs/binfmt_misc/NAME``) per GOARCH, as
tonistiigi/binfmt registers them."""

_RESULT = re.compile(r"^installing: (\S+) (.*)$")
# Lines of a failed installer's log that say why, for programs that print their usage
# after the one line that matters.
# A usage text's own "USAGE:" heading may come first in the log (stdout and stderr are
# interleaved by the runtime), so a line about usage only counts when nothing better does.
_TELLING = re.compile(r"error|fatal|panic|not defined|unknown|invalid|denied|not permitted|"
                      r"no such|not found|cannot", re.IGNORECASE)
_USAGE = re.compile(r"usage", re.IGNORECASE)
_ALREADY = re.compile(r"already registered$")


# ---------------------------------------------------------------------------- pure parts


def missing_emulators(reported: Sequence[Platform], wanted: Sequence[Platform]) -> tuple[Platform, ...]:
    """The platforms of `wanted` whose architecture the builder reported no platform of.

    QEMU runs every variant of an architecture, so ``linux/arm/v6`` counts as present
    when the worker reported ``linux/arm/v7``. Order of `wanted` kept, duplicates dropped.
    """
    have = {(p.os, p.architecture) for p in reported}
    seen: dict[Platform, None] = {}
    for platform in wanted:
        if (platform.os, platform.architecture) not in have:
            seen.setdefault(platform, None)
    return tuple(seen)


def install_arches(platforms: Iterable[Platform], native: Platform | None = None) -> tuple[str, ...]:
    """The installer's architecture names for `platforms`, sorted, without `native`'s.

    Registering a handler for the node's own architecture would send every native
    program through QEMU, so it is never asked for, whatever the caller passes.

    Raises:
        BuilderError: A platform no QEMU emulator exists for.
    """
    arches: set[str] = set()
    for platform in platforms:
        if not can_emulate(platform) or platform.architecture not in HANDLERS:
            raise BuilderError(f"no emulator exists for {platform}",
                               "build its RUN steps FROM --platform=$BUILDPLATFORM (--mode cross)")
        if native is None or not serves_natively(native, Platform(native.os, platform.architecture)):
            arches.add(platform.architecture)
    return tuple(sorted(arches))


def install_args(arches: Sequence[str]) -> list[str]:
    """The installer's arguments: ``--install arm64,riscv64``."""
    return ["--install", ",".join(arches)]


def installer_pod(  # noqa: PLR0913 - a manifest: one parameter per field it fills in
        builder: str, namespace: str, node: str, image: str, arches: Sequence[str],
        timeout: float, run: str) -> dict[str, Any]:
    """The one-off privileged pod that registers `arches` on `node` (`run`: LABEL_RUN's value)."""
    labels = {LABEL_FOR: builder, LABEL_RUN: run, "app.kubernetes.io/managed-by": "kubectl-build",
              "app.kubernetes.io/name": "binfmt"}
    return {
        "apiVersion": "v1", "kind": "Pod",
        # generateName: concurrent invocations each get their own pod (the server shortens
        # a long prefix to fit).
        "metadata": {"generateName": f"{builder}-binfmt-", "namespace": namespace, "labels": labels},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "activeDeadlineSeconds": math.ceil(timeout) + DEADLINE_MARGIN,
            "containers": [{
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "args": install_args(arches),
                # Mounting binfmt_misc and writing its register file need both.
                "securityContext": {"privileged": True},
            }],
        },
    }


@dataclass(frozen=True)
class InstallReport:
    """What an installer pod's log says."""

    installed: tuple[str, ...]
    """Architectures registered now or already before."""
    failed: tuple[tuple[str, str], ...]
    """(architecture, the installer's error) pairs."""
    errors: tuple[str, ...]
    """``error: ...`` lines (binfmt_misc could not be mounted, ...)."""
    supported: tuple[Platform, ...] | None
    """Platforms the node runs after installing; None when the log has no status."""
    emulators: tuple[str, ...] = ()
    """Registered handler names."""


def parse_install_log(log: str) -> InstallReport:
    """Parse the installer's output (stderr lines and the JSON status on stdout, mixed)."""
    installed: list[str] = []
    failed: list[tuple[str, str]] = []
    errors: list[str] = []
    lines = log.splitlines()
    for line in lines:
        text = _strip_timestamp(line.strip())
        match = _RESULT.match(text)
        if match:
            arch, outcome = match.groups()
            if outcome == "OK" or _ALREADY.search(outcome):
                installed.append(arch)
            else:
                failed.append((arch, outcome))
        elif text.startswith("error:"):
            errors.append(text.removeprefix("error:").strip())
    status = _status(log)
    supported = None
    if status is not None:
        found = (_platform(str(p)) for p in status.get("supported") or [])
        supported = tuple(p for p in found if p is not None)
    emulators = tuple(str(e) for e in (status or {}).get("emulators") or [])
    return InstallReport(tuple(installed), tuple(failed), tuple(errors), supported, emulators)


def _strip_timestamp(line: str) -> str:
    # Older installers log with Go's default "2006/01/02 15:04:05 " prefix.
    return re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(\.\d+)? ", "", line)


def _status(log: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^\{", log, re.MULTILINE):
        try:
            value, _ = decoder.raw_decode(log, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) and "supported" in value:
            return value
    return None


def _platform(text: str) -> Platform | None:
    parts = text.split("/")
    return from_parts(*parts[:3]) if len(parts) >= 2 else None


def failure_line(log: str) -> str:
    """The line of a failed installer's log that says why: the first telling one, else the last."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for pattern in (_TELLING, _USAGE):
        found = next((line for line in lines if pattern.search(line)), None)
        if found is not None:
            return found
    return lines[-1] if lines else ""


def install_problems(report: InstallReport, arches: Sequence[str]) -> list[str]:
    """What went wrong installing `arches`, one phrase each; empty when all is well."""
    problems = [f"binfmt_misc: {e}" for e in report.errors]
    problems += [f"{arch}: {why}" for arch, why in report.failed if arch in arches]
    settled = set(report.installed) | {arch for arch, _ in report.failed}
    problems += [f"{arch}: the installer did not report it" for arch in arches if arch not in settled
                 and not report.errors]
    if report.supported is not None:
        runs = {p.architecture for p in report.supported}
        for arch in arches:
            if arch in report.installed and arch not in runs:
                problems.append(f"{arch}: {HANDLERS.get(arch, arch)} is registered but cannot run {arch} "
                                "programs in containers (registered without the F flag by the node?)")
    return problems


# ---------------------------------------------------------------------------- the cluster


def ensure_emulators(kube: Kube, builder: Builder, platforms: Sequence[Platform], image: str,
                     console: Console, *, timeout: float = 120) -> None:
    """Register QEMU emulators for `platforms` on every node `builder`'s pods run on.

    One privileged pod per node, all at once; each is deleted afterwards whatever
    happens. Afterwards, ``ListWorkers`` on the builder reports the new platforms.

    Args:
        kube: Cluster connection (the builder's namespace; the pods go there).
        builder: The builder whose nodes need the emulators.
        platforms: Platforms its RUN steps need (e.g. ``missing_emulators`` of them).
        image: The installer image (``--qemu-image``; DEFAULT_IMAGE by default).
        console: Progress lines; details under --debug.
        timeout: Seconds for every pod to finish.

    Raises:
        BuilderError: The cluster forbids the pod (hint: --mode cross/native, or the
            command for an admin); the image cannot be pulled or run; the installer
            reported a failure; a platform no emulator exists for.
        WaitTimeoutError: A pod did not finish within `timeout` (with the reason seen).
    """
    if not platforms:
        return
    nodes = sorted({pod.node for pod in builder.pods if pod.node and pod.phase != "Terminating"})
    if not nodes:
        raise BuilderError(f"builder {builder.name} has no pod on a node to install emulators on",
                           f"check `kubectl -n {kube.namespace} get pods -l kubectl-build.dev/builder="
                           f"{builder.name}`")
    wanted = {node: install_arches(platforms, _node_platform(kube, node)) for node in nodes}
    wanted = {node: arches for node, arches in wanted.items() if arches}
    if not wanted:
        return
    shown = ", ".join(str(p) for p in platforms)
    console.info(f"installing emulators for {shown} on node{'s' if len(wanted) > 1 else ''} "
                 f"{', '.join(wanted)} ({image})")
    run = secrets.token_hex(6)
    pods: dict[str, str] = {}
    try:
        for node, arches in wanted.items():
            body = installer_pod(builder.name, kube.namespace, node, image, arches, timeout, run)
            pods[node] = _create(kube, body, node, arches, image)
            console.trace(f"pod {pods[node]} installs {','.join(arches)} on node {node}")
        phases = _wait(kube, pods, image, timeout)
        for node, name in pods.items():
            _check(kube, name, node, wanted[node], phases[name], image, console)
    finally:
        _delete(kube, run, list(pods.values()), console)


def _node_platform(kube: Kube, node: str) -> Platform | None:
    from kubectl_build.kube.nodes import node_from

    found = call(kube, f"get node {node}", kube.core().read_node, node, absent=(403, 404))
    return node_from(as_json(kube, found)).platform if found is not None else None


def _create(kube: Kube, body: dict[str, Any], node: str, arches: Sequence[str], image: str) -> str:
    from kubernetes.client.exceptions import ApiException

    def create(**kwargs: Any) -> Any:  # Kube.call passes the request timeout
        try:
            return kube.core().create_namespaced_pod(kube.namespace, body, **kwargs)
        except ApiException as err:
            reason = _reason(err)
            if err.status == 403 or "denied the request" in reason or "PodSecurity" in reason:
                raise refused(kube.namespace, node, arches, image, reason) from err
            raise
    made = kube.call("create pod (emulator installer)", create)
    return str(made.metadata.name)


def refused(namespace: str, node: str, arches: Sequence[str], image: str, reason: str) -> BuilderError:
    """The cluster would not run the privileged installer pod: say why and what to do."""
    if "PodSecurity" in reason:
        what = (f"installing emulators ({','.join(arches)}) needs a privileged pod, which the Pod Security "
                f"level of namespace {namespace} forbids ({reason})")
    else:
        what = (f"cannot create the privileged pod that installs emulators ({','.join(arches)}) in namespace "
                f"{namespace} ({reason})")
    overrides = json.dumps({"spec": {"nodeName": node}}, separators=(",", ":"))
    admin = shlex.join(["kubectl", "run", "binfmt", "--rm", "-i", "--restart=Never", "--privileged",
                        f"--image={image}", f"--overrides={overrides}", "--", *install_args(arches)])
    return BuilderError(what, "build these platforms with --mode cross (RUN steps on $BUILDPLATFORM) or "
                        "--mode native (nodes of their architecture), or ask a cluster admin to run "
                        f"`{admin}` once (and so on each other node the builder runs on)")


def _reason(err: Any) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except ValueError:
        return str(err.reason)


def _wait(kube: Kube, pods: Mapping[str, str], image: str, timeout: float) -> dict[str, str]:
    """Each pod's final phase (Succeeded/Failed); a problem waiting cannot fix raises."""
    done: dict[str, str] = {}
    seen: list[Problem | None] = [None]

    def check() -> dict[str, str] | None:
        for node, name in pods.items():
            if name in done:
                continue
            pod = call(kube, f"get pod {name}", kube.core().read_namespaced_pod, name, kube.namespace)
            if pod is None:
                raise BuilderError(f"emulator installer pod {name} was deleted while it ran",
                                   "run the command again")
            data = as_json(kube, pod)
            phase = str((data.get("status") or {}).get("phase") or "")
            if phase in ("Succeeded", "Failed"):
                done[name] = phase
                continue
            problem = seen[0] = pod_problem(data, image)
            if problem is not None and problem.fatal:
                raise BuilderError(f"emulator installer pod on node {node} cannot start: "
                                   f"{problem.describe()}", _pull_hint(image, node))
        return done if len(done) == len(pods) else None

    if poll(check, timeout=timeout, interval=0.5) is None:
        why = seen[0].describe() if seen[0] is not None else "still running"
        left = [node for node, name in pods.items() if name not in done]
        raise WaitTimeoutError(f"emulator installer pod on node {', '.join(left)} not done after "
                               f"{timeout:.0f}s: {why}", _pull_hint(image, left[0]))
    return done


def _pull_hint(image: str, node: str) -> str:
    return (f"check --qemu-image ({image}) and that node {node} can pull it (registry, mirror), "
            "or build with --mode cross or --mode native")


def _check(  # noqa: PLR0913 - node, arches and image only word its errors
        kube: Kube, name: str, node: str, arches: Sequence[str], phase: str, image: str,
        console: Console) -> None:
    """Raise BuilderError unless installer pod `name` (ended in `phase`) registered `arches`."""
    found = call(kube, f"read pod log {name}", kube.core().read_namespaced_pod_log, name, kube.namespace,
                 container=CONTAINER, absent=(400, 403, 404))
    log = str(found or "")
    console.trace(f"pod {name} ({phase}): {' | '.join(line for line in log.splitlines() if line.strip())}")
    if phase == "Failed":
        why = "; ".join(part for part in (_termination(kube, name), failure_line(log)) if part) or "no output"
        raise BuilderError(f"installing emulators ({','.join(arches)}) on node {node} failed: {why}",
                           f"check that {image} is a binfmt installer taking --install ARCH,...; "
                           "or build with --mode cross or --mode native")
    if found is None:
        console.trace(f"cannot read the log of pod {name}: trusting its exit status")
        return
    problems = install_problems(parse_install_log(log), arches)
    if problems:
        raise BuilderError(f"installing emulators on node {node} failed: {'; '.join(problems)}",
                           f"ask a cluster admin to check binfmt_misc on that node (a privileged {image} "
                           "without arguments shows its state), or build with --mode cross or --mode native")


def _termination(kube: Kube, name: str) -> str:
    # The pod object is still there (deleted only afterwards): its terminated state says why.
    pod = call(kube, f"get pod {name}", kube.core().read_namespaced_pod, name, kube.namespace)
    status = as_json(kube, pod).get("status") or {} if pod is not None else {}
    for box in status.get("containerStatuses") or []:
        term = (box.get("state") or {}).get("terminated") or {}
        if term:
            return f"exit code {term.get('exitCode')} ({term.get('reason') or 'terminated'})"
    return str(status.get("reason") or status.get("message") or "")


def _delete(kube: Kube, run: str, names: Sequence[str], console: Console) -> None:
    """Delete this invocation's installer pods, wait (bounded) until they are gone; never raises."""
    from kubectl_build.errors import KubectlBuildError

    def ours() -> list[str]:
        found = call(kube, "list pods", kube.core().list_namespaced_pod, kube.namespace,
                     label_selector=f"{LABEL_RUN}={run}", absent=(403,))
        return [str(p.metadata.name) for p in found.items] if found is not None else []

    try:
        todo = sorted(set(names) | set(ours()))
    except KubectlBuildError as err:
        console.trace(f"cannot list the emulator installer pods: {err.message}")
        todo = sorted(names)
    for name in todo:
        try:
            call(kube, f"delete pod {name}", kube.core().delete_namespaced_pod, name, kube.namespace,
                 grace_period_seconds=0)
        except KubectlBuildError as err:
            console.info(f"warning: could not delete emulator installer pod {name} ({err.message}); "
                         f"delete it with `kubectl -n {kube.namespace} delete pod {name}`")
    if not todo:
        return
    try:
        if poll(lambda: True if not ours() else None, timeout=30, interval=0.5) is None:
            console.trace(f"pods {', '.join(todo)} still terminating")
    except KubectlBuildError as err:
        console.trace(f"cannot check that pods {', '.join(todo)} are gone: {err.message}")

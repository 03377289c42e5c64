"""Install binfmt_misc/QEMU emulators on the nodes a builder runs on.

A builder executes RUN steps of a foreign platform through the kernel's binfmt_misc
handlers, which are host-wide: one privileged installer pod per node registers them
(``binfmt`` builds the pod and reads its log). BuildKit probes emulators again on
``ListWorkers``, so the caller asks it afterwards what the builder can run now.

The pod is pinned to its node (``nodeName``: no scheduler, every taint tolerated),
carries no service-account token and never a Secret, has a deadline of its own in case
this client dies, and is always deleted, on failure and Ctrl-C too.

A cluster that refuses privileged pods (RBAC, Pod Security admission, a policy webhook)
is a BuilderError whose hint offers --mode cross/native or the command an admin can run.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kubectl_build.errors import BuilderError, KubectlBuildError, WaitTimeoutError
from kubectl_build.kube.api import ApiRefusal, as_json, call
from kubectl_build.kube.binfmt import (
    CONTAINER,
    DEFAULT_IMAGE,
    LABEL_FOR,
    LABEL_RUN,
    failure_line,
    install_arches,
    install_problems,
    installer_pod,
    missing_emulators,
    parse_install_log,
    refused,
)
from kubectl_build.kube.waiting import Problem, pod_problem, poll
from kubectl_build.platforms.platform import Platform

if TYPE_CHECKING:
    from kubectl_build.console import Console
    from kubectl_build.kube.builder import Builder
    from kubectl_build.kube.config import Kube

__all__ = ["DEFAULT_IMAGE", "LABEL_FOR", "LABEL_RUN", "ensure_emulators", "missing_emulators"]


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
    def privileged_refused(refusal: ApiRefusal) -> KubectlBuildError | None:
        reason = refusal.reason
        if refusal.status == 403 or "denied the request" in reason or "PodSecurity" in reason:
            return refused(kube.namespace, node, arches, image, reason)
        return None

    made = call(kube, "create pod (emulator installer)", kube.core().create_namespaced_pod, kube.namespace,
                body, absent=(), refused=privileged_refused)
    return str(made.metadata.name)



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

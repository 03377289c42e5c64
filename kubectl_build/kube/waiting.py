"""Bounded waits that can say why they are still waiting.

`poll` is the only loop; the rest reads pods and events (their JSON form, as kubectl
prints it) and names the problem: an image that cannot be pulled, a pod nobody can
schedule, a ReplicaSet that may not create pods (Pod Security, quota), a container that
keeps crashing, a hostPath that is not what the node has. Problems that waiting cannot
fix are ``fatal`` so the caller stops at once instead of at the timeout.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from kubectl_build.kube.api import as_json, call

if TYPE_CHECKING:
    from kubectl_build.kube.config import Kube

T = TypeVar("T")

# Image pull failures that a retry will not fix (the message is the runtime's).
_PERMANENT_PULL = re.compile(
    r"not found|manifest unknown|name unknown|pull access denied|unauthorized|forbidden|"
    r"invalid reference|no such host|repository does not exist", re.IGNORECASE)
_FATAL_WAITING = ("InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError",
                  "CreateContainerError", "RunContainerError")
_HOSTPATH = re.compile(r"hostPath type check failed: (\S+) is not a (\w+)")
CRASH_RESTARTS = 2


@dataclass(frozen=True)
class Problem:
    """Why a pod (or its controller) is not becoming ready."""

    reason: str
    """Kubernetes' own word for it: ImagePullBackOff, Unschedulable, FailedCreate..."""
    detail: str
    """The message that goes with it (image name, scheduler or admission message)."""
    pod: str | None = None
    """The pod concerned, if any."""
    fatal: bool = False
    """Waiting longer cannot help."""
    hint: str | None = None
    """What the user can do about it."""

    def describe(self) -> str:
        """One phrase: ``ImagePullBackOff (pod x): message``."""
        where = f" (pod {self.pod})" if self.pod else ""
        return f"{self.reason}{where}: {self.detail}" if self.detail else f"{self.reason}{where}"


def poll(check: Callable[[], T | None], *, timeout: float, interval: float = 1.0,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> T | None:
    """Call `check` until it returns something, at most `timeout` seconds.

    Args:
        check: Returns None to keep waiting; may raise to stop with an error.
        timeout: Seconds before giving up (the last check runs at the deadline).
        interval: Pause between checks.
        clock: Monotonic clock (injected by tests).
        sleep: Sleep function (injected by tests).

    Returns:
        The first non-None result, or None when the time ran out.
    """
    deadline = clock() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        sleep(min(interval, remaining))


class PodWatch:
    """A sleep for `poll` that ends as soon as one of the watched pods changes.

    Polling once a second leaves a ready pod unnoticed for half a second on average;
    a watch from the resource version of the last list wakes the next check when the
    kubelet reports a change. The watch only shortens the wait: when it is refused
    (no `watch` right), expired or broken, the remaining time is slept.
    """

    def __init__(self, kube: Kube, selector: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.kube, self.selector, self._sleep = kube, selector, sleep
        self.version: str | None = None
        """resourceVersion of the last pod list: the watch starts from there."""

    def sleep(self, seconds: float) -> None:
        """Wait up to `seconds`; return early when a pod changes."""
        version, self.version = self.version, None
        if version is None:
            self._sleep(seconds)
            return
        start = time.monotonic()
        if self._watch(version, seconds):
            return
        left = seconds - (time.monotonic() - start)
        if left > 0:
            self._sleep(left)

    def _watch(self, version: str, seconds: float) -> bool:
        """True when a pod changed within `seconds` (False: time up, or no watch)."""
        try:
            events = self.events(version, seconds)
        except Exception:  # noqa: BLE001 - an optimisation only: fall back to sleeping
            return False
        try:
            for event in events:
                # An ERROR event (410 Gone: the version is too old) is no change.
                return str(event.get("type")) != "ERROR"
        except Exception:  # noqa: BLE001 - likewise
            return False
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # ends the HTTP request of a watch left early
        return False

    def events(self, version: str, seconds: float) -> Iterator[Mapping[str, Any]]:
        """Watch events of the selected pods after `version`, for about `seconds`."""
        from kubernetes import watch

        stream: Iterator[Mapping[str, Any]] = watch.Watch().stream(
            self.kube.core().list_namespaced_pod, self.kube.namespace,
            label_selector=self.selector, resource_version=version,
            # The server ends the watch: whole seconds, at least one.
            timeout_seconds=max(1, math.ceil(seconds)), _request_timeout=seconds + 10)
        return stream


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Ready condition True and not being deleted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_problem(pod: Mapping[str, Any], image: str | None = None) -> Problem | None:
    """The most telling problem of one pod, from its status alone."""
    name = (pod.get("metadata") or {}).get("name")
    status = pod.get("status") or {}
    for box in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        problem = _container_problem(box, name, image)
        if problem is not None:
            return problem
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
            return Problem("Unschedulable", str(cond.get("message") or ""), name, hint=(
                "check --node-selector/--tolerations/--requests against the nodes; the "
                "containerd worker runs at most one pod per node"))
    return None


def _container_problem(box: Mapping[str, Any], pod: str | None, image: str | None) -> Problem | None:
    waiting = (box.get("state") or {}).get("waiting") or {}
    reason = str(waiting.get("reason") or "")
    message = str(waiting.get("message") or "")
    if reason in ("ImagePullBackOff", "ErrImagePull"):
        shown = image or str(box.get("image") or "")
        return Problem(reason, f"image {shown}: {message}".rstrip(": "), pod,
                       # ErrImagePull turns into ImagePullBackOff within seconds: report that.
                       fatal=reason == "ImagePullBackOff" and bool(_PERMANENT_PULL.search(message)),
                       hint="check --image and that the nodes can pull it (registry, mirror, pull secret)")
    if reason in _FATAL_WAITING:
        return Problem(reason, message, pod, fatal=True, hint=_container_hint(message))
    if reason == "CrashLoopBackOff" or int(box.get("restartCount") or 0) >= CRASH_RESTARTS:
        last = (box.get("lastState") or {}).get("terminated") or {}
        detail = f"exit code {last.get('exitCode')}" if last else message
        return Problem("CrashLoopBackOff", detail, pod,
                       fatal=int(box.get("restartCount") or 0) >= CRASH_RESTARTS)
    return None


def _container_hint(message: str) -> str | None:
    if "not a shared mount" in message:
        return ("the containerd worker needs its state directory (/var/lib/buildkit) on a shared mount "
                "of the node, as systemd sets up: run `mount --make-rshared /` on the node (or bind-mount "
                "/var/lib/buildkit onto itself and make it rshared), or use --worker runc")
    return None


def event_problem(events: Iterable[Mapping[str, Any]], pod: str | None = None) -> Problem | None:
    """A problem named by Warning events of a pod or its controller, newest first."""
    warnings = [e for e in events if e.get("type") == "Warning"]
    warnings.sort(key=_event_time, reverse=True)
    for event in warnings:
        reason, message = str(event.get("reason") or ""), str(event.get("message") or "")
        if reason == "FailedCreate":
            return Problem("FailedCreate", message, pod, fatal=True, hint=_admission_hint(message))
        match = _HOSTPATH.search(message) if reason == "FailedMount" else None
        if match:
            return Problem("FailedMount", f"{match.group(1)} is not a {match.group(2)} on the node", pod,
                           fatal=True, hint="tell where the node's containerd is: annotate the nodes with "
                           "kubectl-build.dev/containerd-sock, -root and -state (builders created by kubectl "
                           "build use them), or pass --containerd-sock/--containerd-root/--containerd-state "
                           "to kubectl buildkit create; or use --worker runc")
    return None


def _admission_hint(message: str) -> str | None:
    if "PodSecurity" in message:
        return ("the namespace's Pod Security level forbids this builder: use a namespace labelled "
                "pod-security.kubernetes.io/enforce=privileged, or ask your cluster admin")
    if "exceeded quota" in message:
        return "raise the namespace's ResourceQuota or lower --requests/--limits"
    return None


def _event_time(event: Mapping[str, Any]) -> str:
    # RFC 3339 strings of one format sort in time order.
    return str(event.get("lastTimestamp") or event.get("eventTime")
               or (event.get("metadata") or {}).get("creationTimestamp") or "")


def crash_hint(line: str) -> str | None:
    """What to do about a buildkitd that exits at start, judged by its last error line."""
    if "newuidmap" in line and "not permitted" in line:
        return ("this node's kernel lets newuidmap write user-namespace maps only with SYS_ADMIN in the "
                "container's bounding set: create the rootless builder with --cap-add SYS_ADMIN")
    if "containerd.sock" in line or "connection refused" in line:
        return "check --containerd-sock (the node's containerd socket)"
    return None


def last_line(log: str) -> str:
    """The line of a crashed container's log that says why: the last error, else the last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    # rootlesskit ends with a bare ": exit status 1" after the line that matters.
    errors = [line for line in lines if re.search(r"error|fatal|panic", line, re.IGNORECASE)]
    return (errors or lines or [""])[-1]


# ---------------------------------------------------------------------------- reading the cluster


def diagnose(kube: Kube, workload: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Problem | None:
    """The problem that keeps a builder's pods from becoming ready, fatal ones first.

    Reads pod and controller events and a crashed container's log; a user without
    rights on events or logs simply gets less detail.
    """
    template = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    image = next((c.get("image") for c in template.get("containers") or []), None)
    problems: list[Problem] = []
    for pod in pods:
        if pod_ready(pod) or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        meta = pod.get("metadata") or {}
        problem = pod_problem(pod, image) or event_problem(_events(kube, meta.get("uid")), meta.get("name"))
        if problem is not None and problem.reason == "CrashLoopBackOff":
            log = call(kube, "read pod log", kube.core().read_namespaced_pod_log, meta.get("name"),
                       kube.namespace, container="buildkitd", previous=True, tail_lines=20,
                       absent=(400, 403, 404))
            line = last_line(str(log or ""))
            if line:
                problem = replace(problem, detail=f"{problem.detail}; last log line: {line}",
                                  hint=crash_hint(line))
        if problem is not None:
            problems.append(problem)
    if not pods:
        for uid in _controller_uids(kube, workload):
            problem = event_problem(_events(kube, uid))
            if problem is not None:
                problems.append(problem)
    problems.sort(key=lambda p: not p.fatal)
    return problems[0] if problems else None


def _events(kube: Kube, uid: str | None) -> list[Mapping[str, Any]]:
    if not uid:
        return []
    found = call(kube, "list events", kube.core().list_namespaced_event, kube.namespace,
                 field_selector=f"involvedObject.uid={uid}", absent=(403,))
    return list(as_json(kube, found).get("items") or []) if found is not None else []


def _controller_uids(kube: Kube, workload: Mapping[str, Any]) -> list[str]:
    meta = workload.get("metadata") or {}
    if workload.get("kind") == "StatefulSet":
        return [str(meta.get("uid"))]
    # Deployments create pods through ReplicaSets: their events say FailedCreate.
    labels = (workload.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    found = call(kube, "list replicasets", kube.apps().list_namespaced_replica_set, kube.namespace,
                 label_selector=selector, absent=(403,))
    items = as_json(kube, found).get("items") or [] if found is not None else []
    return [str(rs["metadata"]["uid"]) for rs in items]


def observed(workload: Mapping[str, Any]) -> bool:
    """The controller has seen the workload's latest spec (pure)."""
    meta, status = workload.get("metadata") or {}, workload.get("status") or {}
    return int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)


def rolled_out(workload: Mapping[str, Any]) -> bool:
    """The controller has replaced every old pod (pure, from the workload's status)."""
    status = workload.get("status") or {}
    if not observed(workload):
        return False
    if workload.get("kind") == "StatefulSet":
        revision = status.get("updateRevision")
        return bool(revision) and status.get("currentRevision") == revision
    return int(status.get("updatedReplicas") or 0) == int(status.get("replicas") or 0)


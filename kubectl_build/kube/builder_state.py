"""A builder's state in the cluster: what its workload and pods say, and the wait until it is ready.

A builder is a Deployment (or a StatefulSet when it has a cache volume per replica)
labelled ``kubectl-build.dev/builder=NAME``; its pods carry the same label. Reading needs
only get/list rights, so a user who may not create builders still finds and uses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubectl_build.errors import BuilderError, WaitTimeoutError
from kubectl_build.kube import builder_manifest as manifest
from kubectl_build.kube.api import as_json as _json
from kubectl_build.kube.api import call as _api
from kubectl_build.kube.config import Kube
from kubectl_build.kube.waiting import PodWatch, Problem, diagnose, observed, pod_ready, poll, rolled_out

if TYPE_CHECKING:
    from kubectl_build.console import Console


@dataclass(frozen=True)
class BuilderPod:
    """One buildkitd pod of a builder."""

    name: str
    node: str
    ready: bool
    container: str
    phase: str


@dataclass(frozen=True)
class Builder:
    """A builder as found in the cluster."""

    name: str
    namespace: str
    worker: str
    image: str
    pods: tuple[BuilderPod, ...]
    kind: str = "Deployment"
    """Deployment, or StatefulSet for builders with a cache volume per replica."""
    replicas: int = 1
    """Desired pods."""
    created: str = ""
    """creationTimestamp of the workload (RFC 3339)."""

    def ready_pods(self) -> list[BuilderPod]:
        """Pods that answer `buildctl debug workers` and are not being deleted."""
        return [pod for pod in self.pods if pod.ready]


def builder_from(workload: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Builder:
    """Build a Builder from the JSON of its workload and pods (pure)."""
    meta = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    boxes = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    box = next((c for c in boxes if c.get("name") == manifest.CONTAINER), boxes[0])
    return Builder(
        name=str(meta.get("name")), namespace=str(meta.get("namespace")),
        worker=str((meta.get("labels") or {}).get(manifest.LABEL_WORKER, "unknown")),
        image=str(box.get("image", "")),
        pods=tuple(sorted((_pod(p) for p in pods), key=lambda p: p.name)),
        kind=str(workload.get("kind") or "Deployment"), replicas=int(spec.get("replicas", 1)),
        created=str(meta.get("creationTimestamp") or ""),
    )


def _pod(pod: Mapping[str, Any]) -> BuilderPod:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    phase = "Terminating" if meta.get("deletionTimestamp") else str(status.get("phase") or "Unknown")
    return BuilderPod(name=str(meta.get("name")), node=str((pod.get("spec") or {}).get("nodeName") or ""),
                      ready=pod_ready(pod), container=manifest.CONTAINER, phase=phase)


# ---------------------------------------------------------------------------- API access


def read_workload(kube: Kube, name: str) -> dict[str, Any] | None:
    """The JSON of the Deployment or StatefulSet `name` (with its kind), or None."""
    ns = kube.namespace
    found = _api(kube, f"get deployment {name}", kube.apps().read_namespaced_deployment, name, ns)
    kind = "Deployment"
    if found is None:
        # 403 too: a user without rights on StatefulSets still sees Deployment builders.
        found = _api(kube, f"get statefulset {name}", kube.apps().read_namespaced_stateful_set,
                     name, ns, absent=(403, 404))
        kind = "StatefulSet"
    if found is None:
        return None
    data: dict[str, Any] = _json(kube, found)
    data.setdefault("kind", kind)
    return data


def pod_selector(name: str | None) -> str:
    """Label selector of builder `name`'s pods (of every builder when None)."""
    return f"{manifest.LABEL_BUILDER}={name}" if name else manifest.LABEL_BUILDER


def builder_pods(kube: Kube, name: str | None, watch: PodWatch | None = None) -> list[dict[str, Any]]:
    """The JSON of builder `name`'s pods (of every builder when None).

    `watch` is told the list's resourceVersion, so its next sleep wakes on changes after it.
    """
    found = _json(kube, _api(kube, "list pods", kube.core().list_namespaced_pod, kube.namespace,
                             label_selector=pod_selector(name)))
    if watch is not None:
        watch.version = (found.get("metadata") or {}).get("resourceVersion")
    return list(found.get("items") or [])


def find_builder(kube: Kube, name: str) -> Builder | None:
    """The builder `name` in the current namespace, or None if there is none."""
    workload = read_workload(kube, name)
    labels = ((workload or {}).get("metadata") or {}).get("labels") or {}
    if workload is None or manifest.LABEL_BUILDER not in labels:
        return None
    return builder_from(workload, builder_pods(kube, name))


def list_builders(kube: Kube, *, all_namespaces: bool = False) -> list[Builder]:
    """Every builder in the current namespace (or all of them), by namespace and name."""
    apps, core, selector = kube.apps(), kube.core(), manifest.LABEL_BUILDER
    calls = [("Deployment", apps.list_namespaced_deployment, apps.list_deployment_for_all_namespaces, ()),
             ("StatefulSet", apps.list_namespaced_stateful_set, apps.list_stateful_set_for_all_namespaces,
              (403,))]
    workloads: list[dict[str, Any]] = []
    for kind, one_ns, every_ns, absent in calls:
        args = () if all_namespaces else (kube.namespace,)
        found = _api(kube, f"list {kind.lower()}s", every_ns if all_namespaces else one_ns, *args,
                     label_selector=selector, absent=absent)
        for item in (_json(kube, found).get("items") or []) if found is not None else []:
            item.setdefault("kind", kind)
            workloads.append(item)
    pods_fn, args = (core.list_pod_for_all_namespaces, ()) if all_namespaces \
        else (core.list_namespaced_pod, (kube.namespace,))
    pods = _json(kube, _api(kube, "list pods", pods_fn, *args, label_selector=selector)).get("items") or []
    builders = []
    for workload in workloads:
        meta = workload["metadata"]
        mine = [p for p in pods if p["metadata"].get("namespace") == meta.get("namespace")
                and (p["metadata"].get("labels") or {}).get(manifest.LABEL_BUILDER) == meta["name"]]
        builders.append(builder_from(workload, mine))
    return sorted(builders, key=lambda b: (b.namespace, b.name))


# ---------------------------------------------------------------------------- waiting for a builder


def wait_ready(kube: Kube, name: str, console: Console, timeout: float, *, rollout: bool = False) -> Builder:
    """Wait for a ready pod of builder `name` (after an update: of the new version).

    Raises:
        BuilderError: A problem waiting cannot fix (named, with the describe to run), or
            the builder was deleted meanwhile.
        WaitTimeoutError: Not ready within `timeout`, with the last problem seen.
    """
    seen: list[Problem | None] = [None]
    said: set[str] = set()
    watch = PodWatch(kube, pod_selector(name))

    def check() -> Builder | None:
        workload = read_workload(kube, name)
        if workload is None:
            raise BuilderError(f"builder {name} was deleted from namespace {kube.namespace} while "
                               "waiting for it", "run the command again")
        pods = builder_pods(kube, name, watch)
        builder = builder_from(workload, pods)
        if builder.ready_pods() and (not rollout or rolled_out(workload)):
            return builder
        if rollout and not rolled_out(workload):
            # Old pods are on their way out: their problems are not the new version's.
            pods = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
            if not observed(workload):
                pods = []
        problem = seen[0] = diagnose(kube, workload, pods)
        if problem is not None and problem.fatal:
            raise BuilderError(f"builder {name} in namespace {kube.namespace} cannot start: "
                               f"{problem.describe()}", _hint(kube, workload, problem))
        _say(console, said, builder, problem)
        return None

    found = poll(check, timeout=timeout, sleep=watch.sleep)
    if found is None:
        problem = seen[0]
        workload = read_workload(kube, name) or {"kind": "Deployment", "metadata": {"name": name}}
        why = problem.describe() if problem else "no pod became ready"
        raise WaitTimeoutError(f"builder {name} in namespace {kube.namespace} not ready after "
                               f"{timeout:.0f}s: {why}", _hint(kube, workload, problem))
    return found


def _hint(kube: Kube, workload: Mapping[str, Any], problem: Problem | None) -> str:
    name = (workload.get("metadata") or {}).get("name")
    if problem and problem.pod:
        target = f"pod {problem.pod}"
    elif workload.get("kind") == "StatefulSet":
        target = f"statefulset {name}"
    else:
        # A Deployment's pod-creation failures are events of its ReplicaSet.
        target = f"replicasets -l kubectl-build.dev/builder={name}"
    see = f"see `kubectl -n {kube.namespace} describe {target}`"
    return f"{problem.hint}; {see}" if problem and problem.hint else see


def _say(console: Console, said: set[str], builder: Builder, problem: Problem | None) -> None:
    # One line per new state, not per poll.
    pods = ", ".join(f"{p.name} ({p.phase})" for p in builder.pods) or "no pod yet"
    line = f"waiting for builder {builder.name}: {pods}"
    if problem is not None:
        line += f"; {problem.describe()}"
    if line not in said:
        said.add(line)
        console.info(line)

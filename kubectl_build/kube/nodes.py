"""The cluster's nodes as the multi-arch planner sees them: platform, Ready, schedulable.

`Node` and the parsing are pure and import nothing of the kubernetes client, so the
planner may use them; only `list_nodes` talks to the cluster.

Listing nodes is a cluster-scoped read that many namespaced users are not granted; such a
user still builds, only without native placement on nodes of other architectures, so a
refusal (403) is an empty answer here rather than an error.

A node's CPU variant is not in any standard label (``platforms`` explains what is assumed);
an admin who knows better may say so with the label or annotation ``VARIANT_KEY``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubectl_build.platforms.matching import ARCH_LABEL, OS_LABEL, node_platform
from kubectl_build.platforms.platform import Platform

if TYPE_CHECKING:
    from kubectl_build.kube.config import Kube

VARIANT_KEY = "kubectl-build.dev/arch-variant"
"""Label or annotation giving a node's CPU variant (``v8``, ``v7``...), when known."""

# Taint effects that keep a pod off a node, or evict it, unless tolerated.
_BLOCKING = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Node:
    """A cluster node, as far as placement cares."""

    name: str
    """``metadata.name``."""
    platform: Platform | None
    """From its labels (``platforms.node_platform``); None when they are unusable."""
    ready: bool = True
    """Whether its Ready condition is True."""
    schedulable: bool = True
    """False when cordoned (``spec.unschedulable``)."""

    @classmethod
    def from_labels(cls, name: str, labels: Mapping[str, str], *, ready: bool = True,
                    schedulable: bool = True) -> Node:
        """A node from its name, ``metadata.labels``, Ready condition and cordon state."""
        return cls(name, node_platform(labels), ready, schedulable)


def list_nodes(kube: Kube, *, tolerations: Sequence[Mapping[str, Any]] = ()) -> tuple[Node, ...]:
    """Every node with its platform, Ready condition and cordon state, by name.

    Args:
        kube: Cluster connection.
        tolerations: Tolerations the builder pods will carry; a node with a NoSchedule or
            NoExecute taint none of them tolerates counts as unschedulable.

    Returns:
        The nodes, or ``()`` when the user may not list nodes (403): the planner then
        plans without native placement and the caller may say so.

    Raises:
        ClusterError: Any other API failure (translated by ``kube.api.call``).
    """
    from kubectl_build.kube.api import as_json, call

    found = call(kube, "list nodes", kube.core().list_node, absent=(403,))
    if found is None:
        return ()
    items = as_json(kube, found).get("items") or []
    return tuple(sorted((node_from(item, tolerations) for item in items), key=lambda n: n.name))


def node_from(node: Mapping[str, Any], tolerations: Sequence[Mapping[str, Any]] = ()) -> Node:
    """A Node from a node's JSON (as ``kubectl get node -o json`` prints it). Pure."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    labels: dict[str, str] = dict(meta.get("labels") or {})
    info = status.get("nodeInfo") or {}
    # The kubelet always sets both labels; nodeInfo says the same for nodes registered
    # by something that does not (virtual kubelets), so it is only a fallback.
    labels.setdefault(OS_LABEL, str(info.get("operatingSystem") or ""))
    labels.setdefault(ARCH_LABEL, str(info.get("architecture") or ""))
    variant = str(labels.get(VARIANT_KEY) or (meta.get("annotations") or {}).get(VARIANT_KEY) or "")
    platform = node_platform(labels, variant)
    if platform is None and variant:
        platform = node_platform(labels)  # a variant we do not know: the baseline, not nothing
    schedulable = not spec.get("unschedulable") and not blocking_taints(spec.get("taints") or [], tolerations)
    return Node(str(meta.get("name") or ""), platform, ready=node_ready(status), schedulable=schedulable)


def node_ready(status: Mapping[str, Any]) -> bool:
    """Whether the node's Ready condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def blocking_taints(taints: Sequence[Mapping[str, Any]],
                    tolerations: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The NoSchedule/NoExecute taints that no toleration tolerates (Kubernetes' rules)."""
    return [t for t in taints if t.get("effect") in _BLOCKING
            and not any(tolerates(tol, t) for tol in tolerations)]


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' ToleratesTaint: effect, key and (for Equal) value must match."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if not key:
        # An empty key with Exists tolerates everything; with Equal it matches nothing.
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    return operator == "Exists" or str(toleration.get("value") or "") == str(taint.get("value") or "")

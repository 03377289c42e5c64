"""The warm path: reuse the last ready builder pod without touching the API first.

Importing the kubernetes client and making the first API calls costs more than a
second; on a ready builder none of it is needed before Solve. We remember which
pod served the last build for a (kubeconfig, context, namespace, builder) key and
dial it straight through `kubectl exec`. If that pod is gone the dial fails fast
and the caller takes the full path (API lookups, creation, waiting) and records
the new pod. Registry credentials are then read in the background: the daemon
asks for them only when it first talks to a registry.

A multi-platform build's plan also needs the pod's node (fixed for the pod's life) and
the cluster's nodes (which change): the entry keeps both, the nodes with the time they
were listed, so a warm multi-platform build makes no API call either. Callers use the
remembered nodes only for a plan that can be wrong in no way but speed (everything on
this builder), and only while they are recent (``NODES_TTL``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from kubectl_build.context.cachedir import cache_dir

CACHE_VERSION = 2
NODES_TTL = 600.0
"""Seconds a remembered node listing stands in for a fresh one."""

NodeSummary = tuple[str, str, str, str, bool, bool]
"""A node as the planner needs it: name, os, architecture, variant (os "" when its
platform is unknown), Ready, schedulable."""


@dataclass(frozen=True)
class WarmEntry:
    """What the last successful connection used."""

    namespace: str
    pod: str
    container: str
    worker: str
    kubectl_args: tuple[str, ...]
    # All ready pods were on this pod's node: loading into it loads the whole cluster.
    single_node: bool = False
    # The pod's node, so a warm multi-platform plan needs no API call to learn it
    # ("" in entries written before it was recorded: look it up).
    node: str = ""
    # Every node as last listed, and when (time.time(); 0 when never listed).
    nodes: tuple[NodeSummary, ...] = ()
    nodes_at: float = 0.0

    def recent_nodes(self, now: float | None = None) -> tuple[NodeSummary, ...] | None:
        """The remembered nodes while at most NODES_TTL old; None when absent or stale."""
        age = (time.time() if now is None else now) - self.nodes_at
        if not self.nodes_at or not self.nodes or not 0 <= age <= NODES_TTL:
            return None
        return self.nodes

    def with_nodes(self, nodes: tuple[NodeSummary, ...], node: str,
                   now: float | None = None) -> WarmEntry:
        """This entry with a fresh node listing (and the pod's node, when learnt)."""
        return replace(self, nodes=nodes, nodes_at=time.time() if now is None else now,
                       node=self.node or node)


def _cache_dir() -> Path:
    return cache_dir() / "builders"


def cache_key(kubeconfig: str | None, context: str | None, namespace: str | None,
              builder: str) -> str:
    """Key of a builder as the user addresses it; kubeconfig edits invalidate it."""
    paths = [kubeconfig] if kubeconfig else (
        os.environ.get("KUBECONFIG", "").split(os.pathsep) if os.environ.get("KUBECONFIG")
        else [os.path.join(os.path.expanduser("~"), ".kube", "config")])
    stamps = []
    for path in paths:
        try:
            stat = os.stat(path)
            stamps.append(f"{os.path.abspath(path)}:{stat.st_mtime_ns}:{stat.st_size}")
        except OSError:
            stamps.append(f"{path}:-")
    raw = json.dumps([CACHE_VERSION, stamps, context, namespace, builder])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def load(key: str) -> WarmEntry | None:
    """The remembered pod, if any."""
    try:
        doc = json.loads((_cache_dir() / f"{key}.json").read_text())
        doc["kubectl_args"] = tuple(doc["kubectl_args"])
        doc["nodes"] = tuple(_summary(item) for item in doc.get("nodes") or ())
        doc["nodes_at"] = float(doc.get("nodes_at") or 0.0)
        return WarmEntry(**doc)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _summary(item: object) -> NodeSummary:
    """A NodeSummary from its JSON list, checked (a damaged entry is no entry)."""
    if not isinstance(item, list) or len(item) != 6:
        raise ValueError("bad node summary")
    name, os_, arch, variant, ready, schedulable = item
    if not all(isinstance(v, str) for v in (name, os_, arch, variant)) or \
            not isinstance(ready, bool) or not isinstance(schedulable, bool):
        raise ValueError("bad node summary")
    return name, os_, arch, variant, ready, schedulable


def save(key: str, entry: WarmEntry) -> None:
    """Remember the pod for next time (best effort)."""
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}"
        tmp.write_text(json.dumps(asdict(entry)))
        tmp.replace(folder / f"{key}.json")
    except OSError:
        pass


def forget(key: str) -> None:
    """Drop a stale entry."""
    with contextlib.suppress(OSError):
        (_cache_dir() / f"{key}.json").unlink()

"""The warm path: reuse the last ready builder pod without touching the API first.

Importing the kubernetes client and making the first API calls costs more than a
second; on a ready builder none of it is needed before Solve. We remember which
pod served the last build for a (kubeconfig, context, namespace, builder) key and
dial it straight through `kubectl exec`. If that pod is gone the dial fails fast
and the caller takes the full path (API lookups, creation, waiting) and records
the new pod. Registry credentials are then read in the background: the daemon
asks for them only when it first talks to a registry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kubectl_build.cachedir import cache_dir

CACHE_VERSION = 2


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
        return WarmEntry(**doc)
    except (OSError, ValueError, TypeError, KeyError):
        return None


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
    try:
        (_cache_dir() / f"{key}.json").unlink()
    except OSError:
        pass

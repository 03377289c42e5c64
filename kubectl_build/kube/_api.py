"""The former home of `kube.api`'s helpers, kept for importers not moved yet (run/cluster.py)."""

from __future__ import annotations

from kubectl_build.kube.api import as_json, call

__all__ = ["as_json", "call"]

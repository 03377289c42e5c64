"""Where kubectl-build keeps per-user state between runs (client id, warm builders)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/kubectl-build, else ~/.cache/kubectl-build."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kubectl-build"

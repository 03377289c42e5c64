"""Where kubectl-build keeps per-user state between runs (client id, warm builders)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user cache folder of this OS, ``kubectl-build`` in it.

    $XDG_CACHE_HOME wherever set; else %LOCALAPPDATA% on Windows, ~/Library/Caches on
    macOS, ~/.cache elsewhere. Never a path relative to the working directory: with no
    home to be found, a folder under the temporary directory.
    """
    env = os.environ if environ is None else environ
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "kubectl-build"
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "kubectl-build"
    home = env.get("HOME") or os.path.expanduser("~")
    if not os.path.isabs(home):  # no HOME and no password database entry
        user = env.get("USER") or env.get("USERNAME") or "user"
        return Path(tempfile.gettempdir()) / f"kubectl-build-cache-{user}"
    if sys.platform == "darwin":
        return Path(home) / "Library" / "Caches" / "kubectl-build"
    return Path(home) / ".cache" / "kubectl-build"

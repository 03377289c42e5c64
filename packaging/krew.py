#!/usr/bin/env python3
"""Build krew and validate-krew-manifest from krew's Go module, cached; print their directory.

    python packaging/krew.py            # -> ~/.cache/kubectl-build/krew-v0.4.4/bin

``go install module@version`` asks the module proxy for the version list, which it may
refuse; a throwaway local module that requires the exact version does not need it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KREW_VERSION = "v0.4.4"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubectl-build"
COMMANDS = ("krew", "validate-krew-manifest")
GO_MOD = f"module krewbuild\n\ngo 1.22\n\nrequire sigs.k8s.io/krew {KREW_VERSION}\n"
TOOLS_GO = """//go:build tools

package tools

import (
\t_ "sigs.k8s.io/krew/cmd/krew"
\t_ "sigs.k8s.io/krew/cmd/validate-krew-manifest"
)
"""


def krew_bin() -> Path:
    """The directory holding krew and validate-krew-manifest, building them if missing."""
    out = CACHE / f"krew-{KREW_VERSION}" / "bin"
    if all((out / name).is_file() for name in COMMANDS):
        return out
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is needed to build krew: install Go (hack/install-deps.sh does)")
    with tempfile.TemporaryDirectory(prefix="krew-build-") as tmp:
        (Path(tmp) / "go.mod").write_text(GO_MOD)
        (Path(tmp) / "tools.go").write_text(TOOLS_GO)
        subprocess.run([go, "mod", "tidy"], cwd=tmp, check=True, timeout=900)
        staging = Path(tmp) / "bin"
        staging.mkdir()
        packages = [f"sigs.k8s.io/krew/cmd/{name}" for name in COMMANDS]
        subprocess.run([go, "build", "-o", f"{staging}{os.sep}", *packages], cwd=tmp, check=True,
                       timeout=1800)  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        shutil.move(str(staging), str(out))
    return out


if __name__ == "__main__":
    try:
        print(krew_bin())
    except (RuntimeError, subprocess.CalledProcessError) as err:
        sys.exit(f"error: {err}")

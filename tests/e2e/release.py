"""The release archive as the tests install it: built once per source change, cached in dist/."""

from __future__ import annotations

import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO

sys.path.insert(0, str(REPO / "packaging"))
import build_release

RELEASE = REPO / "dist" / "release"
# Apart from RELEASE, so the amd64 manifest never lists an arm64 archive of older sources.
ARM64_RELEASE = REPO / "dist" / "release-arm64"
SYSROOT = build_release.CACHE / "sysroot" / "arm64"  # hack/install-deps.sh fetches it
SOURCES = [REPO / "kubectl_build", REPO / "packaging", REPO / "setup.cfg", REPO / "README.md"]


def _newest_source() -> float:
    files = [p for root in SOURCES for p in ([root] if root.is_file() else root.rglob("*"))]
    return max(p.stat().st_mtime for p in files if p.is_file() and "__pycache__" not in p.parts)


@dataclass(frozen=True)
class Release:
    """The built archive and the manifests generated from it."""

    archive: Path
    manifest: Path
    companion: Path


def built_release() -> Release:
    """The linux/amd64 release archive and its manifests, rebuilt when the sources are newer."""
    if platform.machine() != "x86_64" or sys.platform != "linux":
        pytest.fail("the krew test builds the linux/amd64 archive: run it on linux/amd64")
    version = build_release.version()
    archive = RELEASE / f"kubectl-build_{version}_linux_amd64.tar.gz"
    manifest = RELEASE / "plugin.yaml"
    if not archive.exists() or archive.stat().st_mtime < _newest_source() or not manifest.exists():
        subprocess.run([sys.executable, str(REPO / "packaging" / "build_release.py"), "--out", str(RELEASE),
                        "--manifest", str(manifest)], check=True, timeout=1800)  # fmt: skip
    return Release(archive, manifest, RELEASE / "buildkit.yaml")



def built_arm64_release() -> Path:
    """The linux/arm64 archive frozen under qemu-user, rebuilt when the sources are newer."""
    if platform.machine() != "x86_64" or sys.platform != "linux":
        pytest.fail("the arm64 archive is frozen under emulation on linux/amd64: run it there")
    archive = ARM64_RELEASE / f"kubectl-build_{build_release.version()}_linux_arm64.tar.gz"
    if not archive.exists() or archive.stat().st_mtime < _newest_source():
        subprocess.run([sys.executable, str(REPO / "packaging" / "build_release.py"), "--sysroot",
                        str(SYSROOT), "--out", str(ARM64_RELEASE), "--manifest",
                        str(ARM64_RELEASE / "plugin.yaml")], check=True, timeout=2400)  # fmt: skip
    return archive

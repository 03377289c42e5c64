"""The linux/arm64 release archive, frozen and run here under qemu-user.

build_release.py --sysroot freezes it with an arm64 Debian Python emulated by qemu-user
(packaging/emulation.py); the archive is then unpacked and run the same way: the kernel's
binfmt_misc hands every arm64 program to qemu, and QEMU_LD_PREFIX gives it the sysroot's
glibc, as an arm64 machine gives its own.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, Testbed
from tests.e2e.release import SYSROOT, Release, built_arm64_release

# A cold first run freezes under emulation: several minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2700)]

sys.path.insert(0, str(REPO / "packaging"))
import build_release  # noqa: E402

EM_AARCH64, EM_X86_64 = 183, 62


@pytest.fixture(scope="module")
def arm64_archive() -> Path:
    return built_arm64_release()


def elf_machine(data: bytes) -> int | None:
    """The ELF header's e_machine, or None for a file that is not ELF."""
    if not data.startswith(b"\x7fELF"):
        return None
    return int(struct.unpack_from("<H", data, 18)[0])


def test_every_binary_in_the_arm64_archive_is_arm64(arm64_archive: Path) -> None:
    machines: dict[str, int] = {}
    with tarfile.open(arm64_archive) as archive:
        for member in archive.getmembers():
            extracted = archive.extractfile(member) if member.isfile() else None
            machine = elf_machine(extracted.read(20)) if extracted else None
            if machine is not None:
                machines[member.name] = machine
    assert machines.get("kubectl-build") == EM_AARCH64, machines.get("kubectl-build")
    assert any("libpython3" in name for name in machines), sorted(machines)[:20]
    assert any("cygrpc" in name for name in machines), "grpcio's extension is missing"
    foreign = {name: m for name, m in machines.items() if m != EM_AARCH64}
    assert not foreign, f"non-arm64 binaries in the arm64 archive: {foreign}"


def test_the_arm64_archive_passes_the_smoke_test_under_qemu(arm64_archive: Path, testbed: Testbed) -> None:
    env = {**os.environ, "QEMU_LD_PREFIX": str(SYSROOT)}
    done = subprocess.run([sys.executable, str(REPO / "packaging" / "smoke.py"), str(arm64_archive),
                           "--buildkit-host", testbed.buildkit_host], capture_output=True,
                          text=True, timeout=1200, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"smoke: kubectl-build {build_release.version()} (python 3.")
    assert "grpcio " in lines[0] and "kubernetes " in lines[0]
    assert lines[-1] == f"smoke: build against {testbed.buildkit_host}: ok"


def test_one_manifest_lists_both_linux_archives(arm64_archive: Path, release: Release,
                                                tmp_path: Path) -> None:
    gathered = tmp_path / "release"
    gathered.mkdir()
    for archive in (release.archive, arm64_archive):
        (gathered / archive.name).symlink_to(archive)
    subprocess.run([sys.executable, str(REPO / "packaging" / "build_release.py"), "--manifest-only",
                    "--out", str(gathered), "--manifest", str(gathered / "plugin.yaml")],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    manifest = (gathered / "plugin.yaml").read_text()
    for archive, arch in ((release.archive, "amd64"), (arm64_archive, "arm64")):
        assert f"arch: {arch}" in manifest
        assert hashlib.sha256(archive.read_bytes()).hexdigest() in manifest

"""Freezing for linux/arm64 on a linux/amd64 machine: an arm64 Debian Python under qemu-user.

PyInstaller only builds for the interpreter it runs on, so the linux/arm64 archive is
frozen by an arm64 python3 from a Debian sysroot (hack/install-deps.sh fetches one) that
the kernel's binfmt_misc handler runs through qemu-user, with ``QEMU_LD_PREFIX`` pointing
the emulated programs at the sysroot's libraries. What PyInstaller asks the host about
binaries is answered for the target instead: ``ldd`` by the target's own dynamic loader,
``ldconfig -p`` by the target's ldconfig reading the sysroot's cache (both emulated),
``objcopy``, ``objdump`` and ``strip`` by the aarch64 binutils. pip runs on the host with the target's
platform tags: it only chooses and unpacks wheels, and the hashed lock fixes which files.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from krew_manifest import Platform

QEMU = "qemu-aarch64-static"
BINUTILS = {tool: f"aarch64-linux-gnu-{tool}" for tool in ("objcopy", "objdump", "strip")}
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
LDD = """\
#!/bin/sh
# ldd for the emulated arm64 target: its own dynamic loader lists what a binary needs.
# qemu-user has no vDSO to name, and its nameless line would read as a missing library.
for file in "$@"; do
  case $file in -*) continue ;; esac
  listed=$({qemu} -L "{root}" "{root}/lib/ld-linux-aarch64.so.1" --list "$file" 2>&1)
  status=$?
  printf '%s\n' "$listed" | grep -v '^[[:space:]]*(0x'
  exit $status
done
echo "ldd: missing file arguments" >&2; exit 1
"""
LDCONFIG = """\
#!/bin/sh
# ldconfig for the emulated arm64 target: it reads the sysroot's ld.so.cache.
exec {qemu} -L "{root}" "{root}/sbin/ldconfig" "$@"
"""


@dataclass(frozen=True)
class Emulation:
    """An arm64 Debian sysroot whose Python freezes the linux/arm64 archive under qemu-user."""

    sysroot: Path
    python: Path
    target: Platform = Platform("linux", "arm64")

    @classmethod
    def of(cls, sysroot: Path) -> Emulation:
        """Check that everything the emulated build needs is here; exit with what is missing."""
        sysroot = sysroot.resolve()
        pythons = sorted(sysroot.glob("usr/bin/python3.[0-9]*"))
        missing = [what for what, ok in (
            (f"an arm64 python3 under {sysroot}/usr/bin (hack/install-deps.sh fetches one)", pythons),
            (f"{sysroot}/lib/ld-linux-aarch64.so.1", (sysroot / "lib/ld-linux-aarch64.so.1").exists()),
            (f"{sysroot}/etc/ld.so.cache", (sysroot / "etc/ld.so.cache").exists()),
            (f"{QEMU} on PATH (Debian: qemu-user-static)", shutil.which(QEMU)),
            (f"an enabled binfmt_misc handler {BINFMT} (Debian: binfmt-support)",
             BINFMT.exists() and BINFMT.read_text().startswith("enabled")),
            *((f"{tool} on PATH (Debian: binutils-aarch64-linux-gnu)", shutil.which(tool))
              for tool in BINUTILS.values()),
        ) if not ok]  # fmt: skip
        if sys.platform != "linux":
            missing.insert(0, "a Linux host")
        if missing:
            sys.exit("cannot freeze for linux/arm64 under emulation; missing: " + "; ".join(missing))
        return cls(sysroot, pythons[0])

    def tools(self) -> Path:
        """The folder of target-answering ldd, ldconfig and binutils that goes first on PATH."""
        tools = self.sysroot.parent / f"{self.sysroot.name}-tools"
        tools.mkdir(exist_ok=True)
        for name, text in (("ldd", LDD), ("ldconfig", LDCONFIG)):
            (tools / name).write_text(text.format(qemu=shutil.which(QEMU), root=self.sysroot))
            (tools / name).chmod(0o755)
        for name, tool in BINUTILS.items():
            (tools / name).unlink(missing_ok=True)
            (tools / name).symlink_to(shutil.which(tool) or tool)
        return tools

    def env(self) -> dict[str, str]:
        """The environment emulated programs run in."""
        path = f"{self.tools()}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "QEMU_LD_PREFIX": str(self.sysroot), "PATH": path}

    def glibc(self) -> tuple[int, int]:
        """The sysroot's glibc version, from its dynamic loader."""
        out = subprocess.run([QEMU, "-L", str(self.sysroot), str(self.sysroot / "lib/ld-linux-aarch64.so.1"),
                              "--version"], check=True, capture_output=True, text=True).stdout
        found = re.search(r"version (\d+)\.(\d+)", out)
        if not found:
            sys.exit(f"cannot read the sysroot's glibc version from: {out[:200]!r}")
        return int(found[1]), int(found[2])


@dataclass(frozen=True)
class Toolchain:
    """How to create, fill and list a release virtualenv for one interpreter."""

    version: str  # the interpreter's sys.version: part of the venv's cache key
    env: dict[str, str]
    venv_args: tuple[str, ...]
    pip_install: tuple[str, ...]
    pip_list: tuple[str, ...]


def _interpreter(python: Path, env: dict[str, str]) -> tuple[str, tuple[int, int]]:
    out = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2]); print(sys.version)"],
                         check=True, capture_output=True, text=True, env=env).stdout.splitlines()
    major, minor = out[0].split()
    return out[1], (int(major), int(minor))


def wheel_platforms(glibc: tuple[int, int]) -> list[str]:
    """The wheel platform tags an arm64 Linux with this glibc accepts, as pip spells them."""
    major, minor = glibc
    newest_first = [f"manylinux_{major}_{m}_aarch64" for m in range(minor, 16, -1)]
    return [*newest_first, "manylinux2014_aarch64", "linux_aarch64"]


@functools.cache
def toolchain(python: Path, emulation: Emulation | None) -> Toolchain:
    """The native toolchain (the venv's own pip), or pip on the host for the emulated target.

    Cached: asking the interpreter its version costs a second or more under qemu, and one
    release build asks for the same interpreter's toolchain several times.
    """
    env = emulation.env() if emulation else dict(os.environ)
    version, (major, minor) = _interpreter(python, env)
    quiet = ("-q", "--disable-pip-version-check")
    if emulation is None:
        return Toolchain(version, env, (), (str(python), "-m", "pip", "install", *quiet),
                         (str(python), "-m", "pip", "list"))
    site = python.parent.parent / "lib" / f"python{major}.{minor}" / "site-packages"
    platforms = [arg for tag in wheel_platforms(emulation.glibc()) for arg in ("--platform", tag)]
    target = ("--target", str(site), *platforms, "--python-version", f"{major}.{minor}",
              "--implementation", "cp", "--abi", f"cp{major}{minor}")
    host_pip = (sys.executable, "-m", "pip")
    return Toolchain(version, env, ("--without-pip",), (*host_pip, "install", *quiet, *target),
                     (*host_pip, "list", "--path", str(site)))

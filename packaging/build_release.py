#!/usr/bin/env python3
"""Build the self-contained release archive for this machine's platform, then plugin.yaml.

    python packaging/build_release.py [--out dist/release] [--manifest plugin.yaml]
    python packaging/build_release.py --manifest-only --out DIR   # all platforms' archives
    python packaging/build_release.py --sysroot DIR --out DIR     # linux/arm64 under qemu-user

The executable is frozen with PyInstaller (one-dir mode; packaging/README.md says why)
in a build virtualenv cached under ~/.cache/kubectl-build. PyInstaller cannot cross-build:
each platform's archive is made on a runner of that platform, and the manifest is then
generated from every archive gathered in one directory (--manifest-only). On a linux/amd64
machine without an arm64 runner, --sysroot freezes linux/arm64 anyway: PyInstaller runs on
an arm64 Debian Python emulated by qemu-user (emulation.py), which is the same build an
arm64 runner does, only slower.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform as host
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import lock_release  # noqa: E402
from emulation import Emulation, toolchain  # noqa: E402
from krew_manifest import HOMEPAGE, Platform, find_artifacts, render  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubectl-build"
DEFAULT_BASE_URL = f"{HOMEPAGE}/releases/download"
# Program names served by the one executable through small wrappers: krew unpacks
# regular files only (no symlinks), and copies of the executable would triple the size.
WRAPPED = ("kubectl-buildkit", "kubectl_complete-build", "kubectl_complete-buildkit")
POSIX_WRAPPER = """\
#!/bin/sh
# Runs the kubectl-build executable beside this file as {name}.
self=$0
while [ -L "$self" ]; do
  link=$(readlink "$self")
  case $link in /*) self=$link ;; *) self=$(dirname "$self")/$link ;; esac
done
KUBECTL_BUILD_AS={name} exec "$(dirname "$self")/kubectl-build" "$@"
"""
WINDOWS_WRAPPER = '@set KUBECTL_BUILD_AS={name}\r\n@"%~dp0kubectl-build.exe" %*\r\n'


def version() -> str:
    """The package version, read without importing the package."""
    text = (REPO / "kubectl_build" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        sys.exit("no __version__ in kubectl_build/__init__.py")
    return match[1]


def this_platform() -> Platform:
    """The platform this machine builds for, in Go's spelling."""
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    arch = machine.get(host.machine().lower())
    if arch is None:
        sys.exit(f"unsupported machine {host.machine()!r}")
    return Platform(sys.platform.replace("win32", "windows"), arch)


def build_python(emulation: Emulation | None) -> Path:
    """A virtualenv with PyInstaller and the dependencies from the hashed lock, cached by it.

    Every archive of a release installs the same files (packaging/release.lock, made by
    lock_release.py): pip refuses any whose sha256 the lock does not list.
    """
    if lock_release.check():
        sys.exit("packaging/release.lock does not match setup.cfg and requirements-release.txt")
    interpreter = emulation.python if emulation else Path(sys.executable)
    tools = toolchain(interpreter, emulation)
    key = hashlib.sha256(lock_release.LOCK.read_bytes() + tools.version.encode()).hexdigest()[:12]
    venv = CACHE / f"release-venv-{key}"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(interpreter), "-m", "venv", *tools.venv_args, str(venv)], check=True,
                       env=tools.env)
        tools = toolchain(python, emulation)
        for attempt in (1, 2, 3):  # the index is the network: bounded retries
            if subprocess.run([*tools.pip_install, "--require-hashes", "--only-binary=:all:", "-r",
                               str(lock_release.LOCK)]).returncode == 0:
                break
            if attempt == 3:
                sys.exit("installing packaging/release.lock failed")
        (venv / ".complete").touch()
    return python


def release_versions(python: Path, emulation: Emulation | None, into: Path) -> Path:
    """What the executable is frozen with (its --version shows it), as JSON."""
    tools = toolchain(python, emulation)
    listed = subprocess.run([*tools.pip_list, "--format", "json", "--disable-pip-version-check"],
                            check=True, capture_output=True, text=True).stdout
    versions = {item["name"].lower(): item["version"] for item in json.loads(listed)}
    versions["python"] = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"], check=True,
        capture_output=True, text=True, env=tools.env).stdout.strip()
    path = into / "release-versions.json"
    path.write_text(json.dumps(dict(sorted(versions.items())), indent=1) + "\n")
    return path


def freeze(python: Path, emulation: Emulation | None, work: Path, mode: str) -> Path:
    """Run PyInstaller on the spec; return the one-dir folder (or the one-file executable)."""
    tools = toolchain(python, emulation)
    # The source tree changes between builds; the dependencies (the lock) do not.
    subprocess.run([*tools.pip_install, "--no-deps", "--upgrade", "--force-reinstall", str(REPO)],
                   check=True)
    env = {**tools.env, "KB_FREEZE_MODE": mode,
           "KB_RELEASE_VERSIONS": str(release_versions(python, emulation, work))}
    subprocess.run(
        [str(python), "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
         str(HERE / "kubectl-build.spec")],
        check=True, env=env, cwd=work,
    )  # fmt: skip
    return work / "dist" / "kubectl-build"


def stage(frozen: Path, target: Platform, into: Path) -> None:
    """Lay out the archive's files: the executable (+ _internal), wrappers, LICENSE, README."""
    if frozen.is_dir():
        shutil.copytree(frozen, into, symlinks=False)
    else:
        into.mkdir()
        shutil.copy2(frozen, into / target.exe)
    for name in WRAPPED:
        if target.os == "windows":
            (into / f"{name}.cmd").write_text(WINDOWS_WRAPPER.format(name=name), newline="")
        else:
            wrapper = into / name
            wrapper.write_text(POSIX_WRAPPER.format(name=name))
            wrapper.chmod(0o755)
    shutil.copy2(REPO / "LICENSE", into / "LICENSE")
    shutil.copy2(REPO / "README.md", into / "README.md")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_dir())


def write_archive(root: Path, path: Path) -> None:
    """A reproducible archive of ``root``'s contents: sorted, owner 0, fixed mtime."""
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in _files(root):
                if file.is_file():
                    archive.write(file, file.relative_to(root).as_posix())
        return
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for file in _files(root):
            if file.is_symlink():
                sys.exit(f"{file}: krew cannot unpack symlinks")
            info = archive.gettarinfo(str(file), file.relative_to(root).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = mtime
            executable = file.is_dir() or file.stat().st_mode & stat.S_IXUSR
            info.mode = 0o755 if executable else 0o644
            if file.is_file():
                with file.open("rb") as data:
                    archive.addfile(info, data)
            else:
                archive.addfile(info)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime, filename="") as gz:
        gz.write(buffer.getvalue())


def write_manifests(out: Path, manifest: Path, base_url: str) -> None:
    """plugin.yaml (plugin ``build``) and the companion ``buildkit`` manifest."""
    ver = version()
    artifacts = find_artifacts(out, ver)
    if not artifacts:
        sys.exit(f"no kubectl-build_{ver}_* archives in {out}")
    manifest.write_text(render(ver, artifacts, base_url))
    (out / "buildkit.yaml").write_text(render(ver, artifacts, base_url, name="buildkit"))
    print(f"wrote {manifest} and {out / 'buildkit.yaml'}: {', '.join(a.platform.key for a in artifacts)}")


def build(out: Path, mode: str, emulation: Emulation | None = None) -> Path:
    """Freeze, stage and archive for this machine's platform (or the emulated one)."""
    target = emulation.target if emulation else this_platform()
    out.mkdir(parents=True, exist_ok=True)
    archive = out / target.archive_name(version())
    with tempfile.TemporaryDirectory(prefix="kubectl-build-release-") as tmp:
        work = Path(tmp)
        frozen = freeze(build_python(emulation), emulation, work, mode)
        stage(frozen, target, work / "stage")
        write_archive(work / "stage", archive)
    print(f"built {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    return archive


def main() -> None:
    """Command line: build this platform's archive and regenerate the manifests."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "release")
    parser.add_argument("--manifest", type=Path, default=REPO / "plugin.yaml")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="release download URL prefix")
    parser.add_argument("--mode", choices=("onedir", "onefile"), default="onedir")
    parser.add_argument("--manifest-only", action="store_true", help="only regenerate the manifests")
    parser.add_argument("--sysroot", type=Path,
                        help="freeze for this Debian arm64 sysroot's platform under qemu-user")
    args = parser.parse_args()
    if not args.manifest_only:
        build(args.out, args.mode, Emulation.of(args.sysroot) if args.sysroot else None)
    write_manifests(args.out, args.manifest, args.base_url.rstrip("/"))


if __name__ == "__main__":
    main()

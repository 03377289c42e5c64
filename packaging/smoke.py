#!/usr/bin/env python3
"""Smoke-test a release archive the way a user meets it: unpacked into a fresh directory.

    python packaging/smoke.py ARCHIVE [--buildkit-host ADDRESS]

Runs ``--help``, ``--version`` (which must name the frozen dependencies), both plugins,
the completion hook and a bad-input error from the unpacked executable; with
``--buildkit-host`` (where the runner can start a buildkitd) also a build with a local
export. Runs on Linux, macOS and Windows alike: the release workflow calls it on every
platform, and the e2e suite calls it here against the test bed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

TIMEOUT = 300


def unpack(archive: Path, into: Path) -> Path:
    """The archive's contents under ``into`` (tar.gz or zip)."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    return into


def program(root: Path, name: str) -> list[str]:
    """How to run one of the archive's programs on this OS."""
    if sys.platform == "win32":
        exe = root / f"{name}.exe"
        return [str(exe)] if exe.exists() else ["cmd", "/c", str(root / f"{name}.cmd")]
    return [str(root / name)]


def run(command: list[str], *, expect: int = 0, cwd: Path | None = None) -> str:
    """Run, check the exit code, return stdout; stderr is shown on failure."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode != expect:
        sys.exit(f"smoke: {' '.join(command)} exited {done.returncode}, expected {expect}\n"
                 f"{done.stdout}{done.stderr}")
    if expect != 0:
        lines = done.stderr.strip().splitlines()
        if len(lines) != 1 or "Traceback" in done.stderr:
            sys.exit(f"smoke: {' '.join(command)}: not one clear error line:\n{done.stderr}")
    return done.stdout


def require(holds: bool, what: str) -> None:
    """Fail the smoke test with ``what`` unless ``holds`` (asserts vanish under python -O)."""
    if not holds:
        sys.exit(f"smoke: {what}")


def check(root: Path, buildkit_host: str | None, work: Path) -> list[str]:
    """Every smoke check; the lines it reports."""
    build, buildkit = program(root, "kubectl-build"), program(root, "kubectl-buildkit")
    report = []
    require(run([*build, "--help"]).startswith("Usage: kubectl build"), "kubectl-build --help")
    version = run([*build, "--version"]).strip()
    for dependency in ("python", "grpcio", "protobuf", "kubernetes"):
        require(f"{dependency} " in version, f"--version does not name {dependency}: {version}")
    report.append(version)
    require("Manage BuildKit builders" in run([*buildkit, "--help"]), "kubectl-buildkit --help")
    hook = run([*program(root, "kubectl_complete-build"), "--pl"])
    require(hook.startswith("--platform\t"), f"completion hook: {hook!r}")
    run([*build, str(work / "missing")], expect=3)  # ExitCode.CONTEXT
    report.append("help, version, completion, bad input: ok")
    if buildkit_host:
        context = work / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
        (context / "hello").write_text("hello from the release archive\n")
        out = work / "out"
        run([*build, str(context), "--buildkit-host", buildkit_host, "--progress", "plain",
             "-o", f"type=local,dest={out}"])
        require((out / "hello").read_text() == "hello from the release archive\n",
                "the build's export is wrong")
        report.append(f"build against {buildkit_host}: ok")
    return report


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("archive", type=Path)
    parser.add_argument("--buildkit-host", help="also build against this buildkitd")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-smoke-") as tmp:
        root = unpack(args.archive.resolve(), Path(tmp) / "unpacked")
        for line in check(root, args.buildkit_host, Path(tmp)):
            print(f"smoke: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

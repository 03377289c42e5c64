#!/usr/bin/env python3
"""Start-up of the release archive's executable against the pip-installed command.

    .venv/bin/python -m benchmarks.bench_startup [--rounds N]

Both run from the same sources in the same invocation, interleaved: the archive built by
packaging/build_release.py (built first if missing), unpacked to a temporary directory,
and the console script pip installed (non-editable) into the release build's virtualenv.
Measured: `--help`, `--version`, and a no-op build (`FROM scratch` + `COPY`, fully cached)
against the test bed's buildkitd, which imports the whole build path (grpc, protobuf).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from benchmarks.common import REPO, median, run_measured, testbed_env, write_result

sys.path.insert(0, str(REPO / "packaging"))
import build_release
from krew_manifest import PLATFORMS


def archive_path() -> Path:
    """The linux/amd64 archive of this version, built when missing."""
    target = build_release.this_platform()
    assert target in PLATFORMS
    path = REPO / "dist" / "release" / target.archive_name(build_release.version())
    if not path.exists():
        subprocess.run([sys.executable, str(REPO / "packaging" / "build_release.py")], check=True)
    return path


def pip_installed() -> Path:
    """kubectl-build as `pip install .` puts it (the release venv, refreshed from the tree)."""
    python = build_release.build_python()
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-deps", "--force-reinstall", str(REPO)], check=True)  # fmt: skip
    return python.parent / "kubectl-build"


def main() -> None:
    """Measure, print and record the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    host = testbed_env()["BUILDKIT_HOST"]
    archive = archive_path()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        with tarfile.open(archive) as tar:
            tar.extractall(work / "archive", filter="tar")
        (work / "ctx").mkdir()
        (work / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
        (work / "ctx" / "a").write_text("a\n")
        commands = {"pip": str(pip_installed()), "archive": str(work / "archive" / "kubectl-build")}
        cases = {
            "--help": ["--help"],
            "--version": ["--version"],
            "no-op build": [str(work / "ctx"), "--buildkit-host", host, "-q",
                            "-o", f"type=local,dest={work / 'out'}"],
        }  # fmt: skip
        seconds: dict[tuple[str, str], list[float]] = {}
        rss: dict[tuple[str, str], list[int]] = {}
        for round_ in range(args.rounds):
            for case, case_args in cases.items():
                if case == "no-op build" and round_ >= max(3, args.rounds // 3):
                    continue  # a daemon round trip: fewer rounds suffice
                for who, exe in commands.items():
                    took, peak, _ = run_measured([exe, *case_args])
                    seconds.setdefault((case, who), []).append(took)
                    rss.setdefault((case, who), []).append(peak)
    rows: list[dict[str, object]] = []
    for case in cases:
        pip_s, arc_s = median(seconds[(case, "pip")]), median(seconds[(case, "archive")])
        rows.append({
            "case": case,
            "pip-installed ms": f"{pip_s * 1000:.0f}",
            "archive ms": f"{arc_s * 1000:.0f}",
            "ratio archive/pip": f"{arc_s / pip_s:.2f}",
            "archive peak RSS MiB": f"{median([float(r) for r in rss[(case, 'archive')]]) / 1024:.0f}",
            "rounds": len(seconds[(case, "pip")]),
        })  # fmt: skip
    notes = (
        f"Archive: `{archive.name}`, {archive.stat().st_size / 1e6:.1f} MB (PyInstaller one-dir, "
        "see packaging/README.md). pip-installed: the same sources installed non-editable with "
        "pip into the release build's virtualenv. Medians of interleaved runs on the same "
        "machine; the no-op build is fully cached on the test bed's buildkitd. Target: ratio "
        "<= 1.5 for --help."
    )
    path = write_result("startup", "python -m benchmarks.bench_startup", rows, notes)
    print(path.read_text())


if __name__ == "__main__":
    main()

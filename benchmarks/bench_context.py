#!/usr/bin/env python3
"""Context upload, incremental rebuild, client memory and start-up, against buildctl.

    .venv/bin/python -m benchmarks.bench_context [--rounds N] [--skip-big] [--only CASE ...]

--only runs just the named cases (big, small, rebuild, rss, startup) for quick
iteration and prints them without touching the recorded results.

Both clients talk to the same test-bed buildkitd. Each measured build bind-mounts
the context into a trivial RUN, so the context transfer dominates; the daemon's
cache is pruned before every cold run so nothing is reused between clients.
Figures are ratios measured in the same invocation (see benchmarks/results/).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import median, run_measured, testbed_env, write_result

DOCKERFILE = "FROM busybox\nRUN --mount=type=bind,target=/ctx true\n"
CASES = ("big", "small", "rebuild", "rss", "startup")
STATS = re.compile(r"files_sent=(\d+), bytes_sent=(\d+)")


class Bench:
    """Our CLI and buildctl against the test bed's buildkitd (`env`), working in `work`."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env, self.work = env, work
        self.host = env["BUILDKIT_HOST"]
        self.buildctl = env["KB_BUILDCTL"]
        self.ours = shutil.which("kubectl-build", path=str(Path(sys.executable).parent))
        assert self.ours, "kubectl-build not installed in this venv"

    def prune(self) -> None:
        """Empty the daemon's build cache, so the next build is cold."""
        subprocess.run([self.buildctl, "--addr", self.host, "prune", "--all"],
                       capture_output=True, check=True, timeout=600)

    def run_ours(self, ctx: Path) -> tuple[float, int, str]:
        """Build `ctx` with kubectl-build: (seconds, peak RSS in KiB, stderr)."""
        return run_measured([self.ours, str(ctx), "--buildkit-host", self.host,
                             "--progress", "quiet", "--debug"])

    def run_buildctl(self, ctx: Path) -> tuple[float, int, str]:
        """Build `ctx` with buildctl's Dockerfile frontend: (seconds, peak RSS in KiB, stderr)."""
        return run_measured([self.buildctl, "--addr", self.host, "build",
                             "--frontend", "dockerfile.v0", "--local", f"context={ctx}",
                             "--local", f"dockerfile={ctx}", "--progress", "quiet"])

    def cold_pair(self, ctx: Path, rounds: int) -> tuple[float, float]:
        """Median cold-build seconds of (ours, buildctl) over `rounds`, pruned before each."""
        ours, theirs = [], []
        for _ in range(rounds):
            self.prune()
            theirs.append(self.run_buildctl(ctx)[0])
            self.prune()
            ours.append(self.run_ours(ctx)[0])
        return median(ours), median(theirs)


def make_big(root: Path, size: int) -> Path:
    """A context under `root` holding one random file of `size` bytes (whole MiB)."""
    ctx = root / f"big-{size >> 20}M"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    block = os.urandom(1 << 20)
    with open(ctx / "big.bin", "wb") as fh:
        for _ in range(size >> 20):
            fh.write(block)
    return ctx


def make_small(root: Path, count: int) -> Path:
    """A context under `root` holding `count` random 4 KiB files, 500 per folder."""
    ctx = root / f"small-{count}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    for i in range(count):
        folder = ctx / f"d{i // 500:03d}"
        if i % 500 == 0:
            folder.mkdir()
        (folder / f"f{i:05d}").write_bytes(os.urandom(4096))
    return ctx


def main() -> int:
    """Run the selected cases and record (or, with --only, print) their results."""
    parser = argparse.ArgumentParser()
    # Five rounds: the daemon and the 2 cores are shared, single runs swing by 30%.
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--only", nargs="+", choices=CASES, default=None)
    args = parser.parse_args()
    cases = set(args.only or CASES) - ({"big", "rss"} if args.skip_big else set())
    env = testbed_env()
    work = Path(tempfile.mkdtemp(prefix="kb-bench-", dir=os.environ.get("KB_BENCH_DIR")))
    rows: list[dict[str, object]] = []
    bench = Bench(env, work)
    try:
        if "big" in cases:
            big = make_big(work, 1 << 30)
            ours, theirs = bench.cold_pair(big, args.rounds)
            rows.append(_row("1 GiB file, cold upload", ours, theirs, (1 << 30) / ours,
                             (1 << 30) / theirs, 0.9))
            shutil.rmtree(big)
        if cases & {"small", "rebuild"}:
            small = make_small(work, 20_000)
        if "small" in cases:
            size = 20_000 * 4096
            ours, theirs = bench.cold_pair(small, args.rounds)
            rows.append(_row("20,000 x 4 KiB files, cold upload", ours, theirs, size / ours,
                             size / theirs, 0.7))
        if "rebuild" in cases:
            rows.append(_rebuild(bench, small, args.rounds))
        if "rss" in cases:
            rows.append(_rss(bench, work))
        if "startup" in cases:
            rows.append(_startup(bench))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.only:
        for row in rows:
            print(" | ".join(str(v) for v in row.values()))
        return 0
    path = write_result("context", "python -m benchmarks.bench_context", rows,
                        "Throughput ratio = ours/buildctl (higher is better); time ratio = "
                        "ours/buildctl (lower is better). Medians of the rounds (clients "
                        "alternating); 2-core machine whose cores and buildkitd are shared "
                        "with other work, so single runs vary by up to a third.")
    print(path.read_text())
    return 0


def _row(name: str, ours: float, theirs: float, ours_bps: float, theirs_bps: float,
         goal: float) -> dict[str, object]:
    ratio = ours_bps / theirs_bps
    return {"case": name, "ours": f"{ours:.2f}s ({ours_bps / 1e6:.0f} MB/s)",
            "baseline": f"buildctl {theirs:.2f}s ({theirs_bps / 1e6:.0f} MB/s)",
            "ratio": f"{ratio:.2f}x throughput", "goal": f">= {goal}x",
            "met": "yes" if ratio >= goal else "NO"}


def _rebuild(bench: Bench, ctx: Path, rounds: int) -> dict[str, object]:
    bench.prune()
    bench.run_ours(ctx)
    bench.run_buildctl(ctx)
    target = ctx / "d007" / "f03500"
    ours, theirs, sent = [], [], []
    for _ in range(rounds):
        target.write_bytes(os.urandom(4096))
        # Only the content changed: RUN's cache key changes, so the build really runs.
        seconds, _, err = bench.run_ours(ctx)
        ours.append(seconds)
        match = STATS.search(err)
        assert match, err[-2000:]
        sent.append((int(match.group(1)), int(match.group(2))))
        target.write_bytes(os.urandom(4096))
        theirs.append(bench.run_buildctl(ctx)[0])
        time.sleep(0.1)
    ratio = median(ours) / median(theirs)
    files, data = max(sent)
    ok = ratio <= 1.5 and data <= 4096 * 2 and files <= 3
    return {"case": "rebuild after touching 1 of 20,000 files",
            "ours": f"{median(ours):.2f}s, sent {files} files / {data} B "
                    "(Dockerfile + .dockerignore lookups + the touched file)",
            "baseline": f"buildctl {median(theirs):.2f}s", "ratio": f"{ratio:.2f}x time",
            "goal": "<= 1.5x time; bytes <= the file", "met": "yes" if ok else "NO"}


def _rss(bench: Bench, work: Path) -> dict[str, object]:
    ctx = make_big(work, 2 << 30)
    bench.prune()
    seconds, rss_kib, _ = bench.run_ours(ctx)
    shutil.rmtree(ctx)
    mib = rss_kib / 1024
    return {"case": "client peak RSS sending a 2 GiB context", "ours": f"{mib:.0f} MiB",
            "baseline": f"{seconds:.1f}s upload", "ratio": "-", "goal": "<= 150 MB",
            "met": "yes" if rss_kib * 1024 <= 150e6 else "NO"}


def _startup(bench: Bench) -> dict[str, object]:
    assert bench.ours
    help_times, bare = [], []
    for _ in range(7):
        bare.append(run_measured([sys.executable, "-c", "pass"])[0])
        help_times.append(run_measured([bench.ours, "--help"])[0])
    ratio = median(help_times) / median(bare)
    return {"case": "kubectl-build --help wall time", "ours": f"{median(help_times) * 1000:.0f} ms",
            "baseline": f"python -c pass {median(bare) * 1000:.0f} ms",
            "ratio": f"{ratio:.2f}x", "goal": "<= 3x", "met": "yes" if ratio <= 3 else "NO"}


if __name__ == "__main__":
    sys.exit(main())

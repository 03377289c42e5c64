#!/usr/bin/env python3
"""The buildx build surface against buildx itself: local cache and SBOM figures.

    .venv/bin/python -m benchmarks.bench_surface [--rounds N] [--no-write]

Both clients talk to the same test-bed buildkitd: ours with --buildkit-host, buildx
(built from its Go module by hack/build-buildx.sh) through its ``remote`` driver on the
same socket. Runs alternate ours/buildx within each round; figures are medians.

- warm rebuild from a local cache: the example Go project (examples/Dockerfile.cross,
  linux/amd64), each tool importing the cache it exported itself (mode=max), the daemon's
  cache emptied before every run; the image is exported as an OCI tarball, so its layers
  are read from the cache directory through the session.
- cache export: a 500 MB (incompressible) layer exported with --cache-to type=local into
  an empty directory; the step itself is cached, so the time is the export's. Throughput
  ratio = buildx's time / ours.
- SBOM overhead: the same small build with and without --sbom (our scanner-protocol
  generator image, tests/e2e/test_attestations.py's), --no-cache, to an OCI tarball;
  ratio of the two tools' overheads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.common import REPO, median, run_measured, testbed_env, write_result
from tests.e2e.test_attestations import SCANNER

THEIRS = "kb-bench-remote"
BIG = 500_000_000


class Bench:
    """Our CLI and buildx (remote driver) on the test bed's buildkitd, working in `work`."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env, self.work = env, work
        self.host = env["BUILDKIT_HOST"]
        self.buildctl = env["KB_BUILDCTL"]
        self.ours = shutil.which("kubectl-build", path=str(Path(sys.executable).parent)) or "kubectl-build"
        out = subprocess.run([str(REPO / "hack/build-buildx.sh")], capture_output=True, text=True,
                             check=True).stdout.strip()
        self.buildx = str(Path(out) / "buildx")
        self.buildx_env = {"BUILDX_CONFIG": str(work / "buildx"), "DOCKER_CONFIG": str(work / "docker")}
        subprocess.run([self.buildx, "create", "--name", THEIRS, "--driver", "remote", self.host],
                       env=self._env(), capture_output=True, check=True, timeout=120)

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.buildx_env}

    def prune(self) -> None:
        """Empty the daemon's build cache."""
        subprocess.run([self.buildctl, "--addr", self.host, "prune", "--all"], capture_output=True,
                       check=True, timeout=600)

    def ours_build(self, ctx: Path, *args: str) -> float:
        """Seconds of one `kubectl build`."""
        cmd = [self.ours, str(ctx), "--buildkit-host", self.host, "--progress", "plain", *args]
        return run_measured(cmd)[0]

    def buildx_build(self, ctx: Path, *args: str) -> float:
        """Seconds of one `buildx build` on the remote builder."""
        return run_measured([self.buildx, "--builder", THEIRS, "build", str(ctx), "--progress", "plain",
                             *args], env=self.buildx_env)[0]

    def close(self) -> None:
        """Forget buildx's builder."""
        subprocess.run([self.buildx, "rm", THEIRS], env=self._env(), capture_output=True, timeout=60)


def warm_from_local_cache(bench: Bench, rounds: int) -> dict[str, object]:
    """Each tool rebuilds the Go example from the local cache it exported, daemon cache empty."""
    ctx, file = REPO / "examples", str(REPO / "examples" / "Dockerfile.cross")
    ours_dir, theirs_dir = bench.work / "cache-ours", bench.work / "cache-theirs"
    common = ("-f", file, "--platform", "linux/amd64", "--provenance=false",
              "-o", f"type=oci,dest={bench.work / 'warm.tar'}")
    bench.ours_build(ctx, *common, "--cache-to", f"type=local,dest={ours_dir},mode=max")
    bench.buildx_build(ctx, *common, "--cache-to", f"type=local,dest={theirs_dir},mode=max")
    ours, theirs = [], []
    for _ in range(rounds):
        bench.prune()
        ours.append(bench.ours_build(ctx, *common, "--cache-from", f"type=local,src={ours_dir}"))
        bench.prune()
        theirs.append(bench.buildx_build(ctx, *common, "--cache-from", f"type=local,src={theirs_dir}"))
    return _row("warm rebuild from --cache-from type=local (Go example)", ours, theirs, "time", 1.1)


def cache_export(bench: Bench, rounds: int) -> dict[str, object]:
    """Each tool exports the cached 500 MB layer into an empty local cache directory."""
    ctx = bench.work / "big"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN head -c {BIG} /dev/urandom > /big # {uuid.uuid4()}\n")
    bench.ours_build(ctx)  # the step, once: every export below is of a cached layer
    ours, theirs = [], []
    for index in range(rounds + 1):
        dest_ours, dest_theirs = bench.work / f"export-ours-{index}", bench.work / f"export-theirs-{index}"
        took_ours = bench.ours_build(ctx, "--cache-to", f"type=local,dest={dest_ours},mode=max")
        took_theirs = bench.buildx_build(ctx, "--cache-to", f"type=local,dest={dest_theirs},mode=max")
        shutil.rmtree(dest_ours)
        shutil.rmtree(dest_theirs)
        if index:  # the first pair also compresses the layer for the daemon's blob cache
            ours.append(took_ours)
            theirs.append(took_theirs)
    row = _row("export of a 500 MB cache to a local dir", ours, theirs, "throughput", 0.9)
    row["ratio"] = round(median(theirs) / median(ours), 2)
    row["goal met"] = "yes" if row["ratio"] >= 0.9 else "NO"  # type: ignore[operator]
    return row


def sbom_overhead(bench: Bench, rounds: int) -> dict[str, object]:
    """What --sbom adds to a small no-cache build, for each tool."""
    generator_ctx = bench.work / "generator"
    generator_ctx.mkdir()
    (generator_ctx / "scan.sh").write_text(SCANNER)
    (generator_ctx / "Dockerfile").write_text('FROM busybox\nCOPY scan.sh /scan.sh\nRUN chmod +x /scan.sh\n'
                                              'ENTRYPOINT ["/scan.sh"]\n')
    generator = f"{bench.env['KB_REGISTRY']}/kb-test/sbom-generator:bench"
    bench.ours_build(generator_ctx, "-t", generator, "--push", "--provenance=false")
    ctx = bench.work / "small"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built\n")
    out = f"type=oci,dest={bench.work / 'out.tar'}"
    plain = ("--no-cache", "--provenance=false", "-o", out)
    sbom = (*plain, f"--sbom=generator={generator}")
    times: dict[str, list[float]] = {"ours": [], "ours+sbom": [], "buildx": [], "buildx+sbom": []}
    for _ in range(rounds):
        times["ours"].append(bench.ours_build(ctx, *plain))
        times["buildx"].append(bench.buildx_build(ctx, *plain))
        times["ours+sbom"].append(bench.ours_build(ctx, *sbom))
        times["buildx+sbom"].append(bench.buildx_build(ctx, *sbom))
    ours = median(times["ours+sbom"]) - median(times["ours"])
    theirs = median(times["buildx+sbom"]) - median(times["buildx"])
    ratio = round(ours / theirs, 2) if theirs > 0 else float("inf")
    return {"case": "SBOM generation overhead (--sbom vs none)", "ours s": round(ours, 2),
            "buildx s": round(theirs, 2), "ratio": ratio, "goal": "overheads <= 1.1x",
            "goal met": "yes" if ratio <= 1.1 else "NO"}


def _row(case: str, ours: list[float], theirs: list[float], kind: str, goal: float) -> dict[str, object]:
    ratio = round(median(ours) / median(theirs), 2)
    return {"case": case, "ours s": round(median(ours), 2), "buildx s": round(median(theirs), 2),
            "ratio": ratio, "goal": f"{kind} {'<=' if kind == 'time' else '>='} {goal}x",
            "goal met": "yes" if (ratio <= goal if kind == "time" else ratio >= goal) else "NO"}


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not record the results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-bench-surface-") as tmp:
        bench = Bench(testbed_env(), Path(tmp))
        try:
            rows = [warm_from_local_cache(bench, args.rounds), cache_export(bench, args.rounds),
                    sbom_overhead(bench, args.rounds)]
        finally:
            bench.close()
    for row in rows:
        print(row)
    if not args.no_write:
        notes = ("Ours and buildx (remote driver) on the same test-bed buildkitd, alternating; "
                 "medians. Time ratios: ours / buildx (lower is better); the export row is a "
                 "throughput ratio (higher is better); SBOM: ratio of the two overheads.")
        write_result("surface", f"python -m benchmarks.bench_surface --rounds {args.rounds}", rows, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

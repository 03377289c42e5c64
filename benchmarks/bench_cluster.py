#!/usr/bin/env python3
"""kubectl build on the test-bed cluster: transport throughput, warm overhead, vs buildx.

    .venv/bin/python -m benchmarks.bench_cluster [--rounds N]

Needs `hack/testbed up cluster`. Every ratio is measured in this one invocation:
- transport: a 1 GiB context sent through our exec bridge (kubectl child on the
  socket, and the Python websocket) vs the same bytes through a raw
  `kubectl exec -i POD -- sh -c 'cat >/dev/null'` into the same builder pod;
- warm overhead: process start to Solve sent on a ready builder (our --debug line);
- against docker buildx's kubernetes driver (Debian trixie's docker-buildx, fetched by
  hack/cluster/fetch-trixie.sh) with the same builder image, cold (builder absent)
  and warm, on two cases that need no registry (pods cannot reach the node-local
  registries without host networking, which buildx's driver cannot request): a
  two-platform build with a RUN per platform, and a 20,000-file context.
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

from benchmarks.common import REPO, STATE, median, run_measured, write_result

BUILDX_DEB = ("docker-buildx", "0.13.1+ds1-3")
IMAGE = "docker.io/moby/buildkit:v0.34.2"
SOLVE = re.compile(r"solve sent ([0-9.]+)s after start")


def cluster_env() -> dict[str, str]:
    path = STATE / "cluster" / "env"
    if not path.exists():
        sys.exit("cluster not running: hack/testbed up cluster")
    pairs = (ln.removeprefix("export ").split("=", 1) for ln in path.read_text().splitlines()
             if "=" in ln and not ln.startswith("#"))
    return {k: v.strip("'\"") for k, v in pairs}


class Bench:
    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": env["KUBECONFIG"],
                    "DOCKER_CONFIG": str(work / "docker")}
        self.work = work
        bindir = Path(sys.executable).parent
        self.ours = str(bindir / "kubectl-build")
        self.ours_admin = str(bindir / "kubectl-buildkit")
        root = subprocess.run([str(REPO / "hack/cluster/fetch-trixie.sh"), *BUILDX_DEB],
                              capture_output=True, text=True, check=True).stdout.strip()
        self.buildx = str(Path(root) / "usr/libexec/docker/cli-plugins/docker-buildx")
        self.ns = f"kbbench-{os.getpid()}"
        self.kubectl("create", "namespace", self.ns)

    def kubectl(self, *args: str, stdin: bytes | None = None) -> str:
        done = subprocess.run(["kubectl", *args], input=stdin, capture_output=True,
                              env=self.env, check=True, timeout=600)
        return done.stdout.decode()

    def close(self) -> None:
        subprocess.run([self.buildx, "rm", "kbbench"], env=self.env, capture_output=True)
        subprocess.run(["kubectl", "delete", "namespace", self.ns, "--wait=false"],
                       env=self.env, capture_output=True)

    def ours_build(self, ctx: Path, *args: str) -> float:
        cmd = [self.ours, str(ctx), "-n", self.ns, "--progress", "quiet", *args]
        return run_measured(cmd, env=self.env)[0]

    def buildx_build(self, ctx: Path, *args: str) -> float:
        cmd = [self.buildx, "--builder", "kbbench", "build", str(ctx), "--progress", "quiet",
               *args]
        return run_measured(cmd, env=self.env)[0]

    def ours_absent(self) -> None:
        subprocess.run([self.ours_admin, "rm", "buildkit", "-n", self.ns], env=self.env,
                       capture_output=True, timeout=300)

    def buildx_absent(self) -> None:
        subprocess.run([self.buildx, "rm", "kbbench"], env=self.env, capture_output=True,
                       timeout=300)
        subprocess.run([self.buildx, "create", "--name", "kbbench", "--driver", "kubernetes",
                        "--driver-opt", f"namespace={self.ns},image={IMAGE}"],
                       env=self.env, capture_output=True, check=True, timeout=60)

    def builder_pod(self) -> str:
        return self.kubectl("-n", self.ns, "get", "pods", "-l",
                            "kubectl-build.dev/builder=buildkit", "-o",
                            "jsonpath={.items[0].metadata.name}")


def two_platform_ctx(root: Path) -> Path:
    ctx = root / "twoplat"
    ctx.mkdir()
    shutil.copy(shutil.which("busybox") or "/bin/busybox", ctx / "busybox")
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'ARG STAMP\nRUN ["/bin/busybox", "sh", "-c", "echo $STAMP > /stamp"]\n')
    return ctx


def small_files_ctx(root: Path) -> Path:
    ctx = root / "small"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY . /ctx\n")
    for i in range(20_000):
        folder = ctx / f"d{i // 500:03d}"
        if i % 500 == 0:
            folder.mkdir()
        (folder / f"f{i:05d}").write_bytes(os.urandom(4096))
    return ctx


def big_ctx(root: Path) -> Path:
    ctx = root / "big"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY big.bin /big.bin\n")
    block = os.urandom(1 << 20)
    with open(ctx / "big.bin", "wb") as fh:
        for _ in range(1024):
            fh.write(block)
    return ctx


def _vs_buildx(bench: Bench, name: str, ctx: Path, args: list[str], rounds: int,
               cold: bool) -> dict[str, object]:
    ours, theirs = [], []
    for i in range(rounds):
        stamp = ["--build-arg", f"STAMP={time.time()}-{i}"]
        if cold:
            bench.ours_absent()
        ours.append(bench.ours_build(ctx, *args, *stamp))
        if cold:
            bench.buildx_absent()
        theirs.append(bench.buildx_build(ctx, *args, *stamp))
    ratio = median(ours) / median(theirs)
    return {"case": f"{name} ({'cold: builder absent' if cold else 'warm'})",
            "ours": f"{median(ours):.2f}s", "baseline": f"buildx k8s {median(theirs):.2f}s",
            "ratio": f"{ratio:.2f}x time", "goal": "<= 1.1x",
            "met": "yes" if ratio <= 1.1 else "NO"}


def _transport(bench: Bench, ctx: Path, rounds: int) -> list[dict[str, object]]:
    pod = bench.builder_pod()
    data = ctx / "big.bin"
    raw, ours, ws = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        with open(data, "rb") as fh:
            subprocess.run(["kubectl", "-n", bench.ns, "exec", "-i", pod, "--", "sh", "-c",
                            "cat > /dev/null"], stdin=fh, env=bench.env, check=True,
                           timeout=900)
        raw.append(time.perf_counter() - start)
        subprocess.run([bench.ours_admin, "prune", "--all", "-n", bench.ns], env=bench.env,
                       capture_output=True, timeout=300)
        ours.append(bench.ours_build(ctx, "-o", "type=cacheonly"))
        subprocess.run([bench.ours_admin, "prune", "--all", "-n", bench.ns], env=bench.env,
                       capture_output=True, timeout=300)
        env_ws = {"KUBECTL_BUILD_TRANSPORT": "websocket"}
        ws.append(run_measured([bench.ours, str(ctx), "-n", bench.ns, "--progress", "quiet",
                                "-o", "type=cacheonly"], env={**bench.env, **env_ws})[0])
    size = data.stat().st_size
    rows = []
    for label, values, goal in (("kubectl exec bridge (default)", ours, 0.8),
                                ("websocket bridge", ws, None)):
        ratio = median(raw) / median(values)
        rows.append({"case": f"1 GiB context, {label}",
                     "ours": f"{median(values):.2f}s ({size / median(values) / 1e6:.0f} MB/s)",
                     "baseline": f"raw kubectl exec cat {median(raw):.2f}s "
                                 f"({size / median(raw) / 1e6:.0f} MB/s)",
                     "ratio": f"{ratio:.2f}x throughput",
                     "goal": f">= {goal}x" if goal else "(alternative)",
                     "met": ("yes" if ratio >= goal else "NO") if goal else "-"})
    return rows


def _overhead(bench: Bench, ctx: Path, rounds: int) -> dict[str, object]:
    values = []
    for i in range(max(rounds, 5)):
        _, _, err = run_measured([bench.ours, str(ctx), "-n", bench.ns, "--progress", "quiet",
                                  "--debug", "--build-arg", f"STAMP={i}", "-o",
                                  "type=cacheonly"], env=bench.env)
        match = SOLVE.search(err)
        assert match, err[-2000:]
        values.append(float(match.group(1)))
    value = median(values)
    return {"case": "warm overhead: process start to Solve sent", "ours": f"{value:.2f}s",
            "baseline": "-", "ratio": "-", "goal": "<= 0.6s",
            "met": "yes" if value <= 0.6 else "NO"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kb-cbench-", dir=os.environ.get("KB_BENCH_DIR")))
    (work / "docker").mkdir()
    bench = Bench(cluster_env(), work)
    rows: list[dict[str, object]] = []
    try:
        two = two_platform_ctx(work)
        plat = ["--platform", "linux/amd64,linux/arm64", "-o", "type=cacheonly"]
        rows.append(_vs_buildx(bench, "2 platforms, RUN each", two, plat, args.rounds, True))
        rows.append(_vs_buildx(bench, "2 platforms, RUN each", two, plat, args.rounds, False))
        small = small_files_ctx(work)
        rows.append(_vs_buildx(bench, "20,000-file context", small, ["-o", "type=cacheonly"],
                               args.rounds, False))
        rows.append(_overhead(bench, two, args.rounds))
        rows += _transport(bench, big_ctx(work), args.rounds)
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)
    path = write_result("cluster", "python -m benchmarks.bench_cluster", rows,
                        "Same cluster, same builder image (moby/buildkit:v0.34.2 assembled "
                        "locally), medians of the rounds; 2-core machine running the whole "
                        "cluster. buildx is Debian trixie's docker-buildx 0.13.1.")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

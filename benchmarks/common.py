"""Shared plumbing for benchmarks: timing subprocesses, the test bed, result files."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("KB_STATE", REPO / ".testbed"))


def testbed_env() -> dict[str, str]:
    """The running test bed's addresses (hack/testbed up core)."""
    path = STATE / "env.json"
    if not path.exists():
        sys.exit(f"test bed not running ({path} missing): run hack/testbed up core")
    return dict(json.loads(path.read_text()))


def run_measured(cmd: list[str], env: dict[str, str] | None = None,
                 stdin: bytes | None = None) -> tuple[float, int, str]:
    """Run cmd and return (seconds, its peak RSS in KiB, stderr) using wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin else None)
    assert proc.stderr is not None
    if stdin is not None and proc.stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss, err.decode(errors="replace")


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return statistics.median(values)


def write_result(name: str, command: str, rows: list[dict[str, object]], notes: str) -> Path:
    """Record figures as JSON and a Markdown table under benchmarks/results/."""
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (out / f"{name}.json").write_text(json.dumps(
        {"benchmark": name, "command": command, "measured": stamp, "rows": rows}, indent=2) + "\n")
    headers = list(rows[0])
    lines = [f"# {name}", "", f"Measured {stamp} with:", "", f"    {command}", "", notes, "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(r[h]) for h in headers) + " |" for r in rows]
    path = out / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path

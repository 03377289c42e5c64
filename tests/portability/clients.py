"""Run the package's real entry points as a macOS or Windows client would (see shim/)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SHIM = Path(__file__).resolve().parent / "shim"
REPO = Path(__file__).resolve().parents[2]
CLIENT_OSES = ("darwin", "win32")
ENTRY = {
    "kubectl-build": "from kubectl_build.__main__ import build_main as main",
    "kubectl-buildkit": "from kubectl_build.__main__ import buildkit_main as main",
    "kubectl_complete-build": "from kubectl_build.__main__ import complete_build_main as main",
}


@dataclass(frozen=True)
class Run:
    """A finished run of an entry point."""

    code: int
    stdout: str
    stderr: str


def pretend_env(client_os: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment making a child interpreter look like ``client_os``."""
    env = dict(os.environ if base is None else base)
    env["KB_PRETEND_OS"] = client_os
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHIM), str(REPO), env.get("PYTHONPATH"))
                                        if p)
    return env


def run_as(client_os: str, program: str, *args: str, env: dict[str, str] | None = None,
           cwd: Path | None = None, timeout: float = 300) -> Run:
    """``program args`` in an interpreter that looks like ``client_os``; ``env`` overrides.

    The rest of this environment stays (HOME above all: a client OS always has a home).
    """
    code = f"import sys; {ENTRY[program]}; sys.argv[0] = {program!r}; sys.exit(main())"
    merged = {**os.environ, **(env or {})}
    done = subprocess.run([sys.executable, "-c", code, *args], env=pretend_env(client_os, merged),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL, check=False)
    return Run(done.returncode, done.stdout, done.stderr)

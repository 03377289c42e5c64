"""Shared helpers for end-to-end tests against the real test bed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("KB_STATE", REPO / ".testbed"))


@dataclass(frozen=True)
class Testbed:
    """Addresses and credentials of the running test bed (hack/testbed up core)."""

    __test__ = False  # not a pytest test class despite the name
    env: dict[str, str]

    @property
    def buildkit_host(self) -> str:
        return self.env["BUILDKIT_HOST"]

    @property
    def buildctl(self) -> str:
        return self.env["KB_BUILDCTL"]

    @property
    def registry(self) -> str:
        return self.env["KB_REGISTRY"]

    @property
    def registry_tls(self) -> str:
        return self.env["KB_REGISTRY_TLS"]


def load_testbed() -> Testbed:
    """Read the test bed's env.json; a missing test bed is a failure, never a skip."""
    path = STATE / "env.json"
    if not path.exists():
        raise RuntimeError(f"test bed not running ({path} missing): run hack/testbed up core")
    return Testbed(json.loads(path.read_text()))


@dataclass(frozen=True)
class Run:
    """A finished CLI run."""

    code: int
    stdout: str
    stderr: str


def cli_path(name: str = "kubectl-build") -> str:
    """The installed console script next to this interpreter."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: pip install -e .")
    return found


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
            timeout: float = 600, cwd: str | None = None,
            program: str = "kubectl-build") -> Run:
    """Run the real CLI in a subprocess (real exit codes, real stdout/stderr)."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([cli_path(program), *args], input=stdin, capture_output=True,
                          env=full_env, timeout=timeout, cwd=cwd, check=False)
    return Run(done.returncode, done.stdout.decode(errors="replace"),
               done.stderr.decode(errors="replace"))

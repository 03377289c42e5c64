"""docker buildx, built from its Go module (hack/build-buildx.sh), as the reference client.

Its ``remote`` driver talks to a buildkitd socket directly, so buildx and our CLI can be
run against the same daemon (or the same recording proxy) and their answers compared.
Each ``Buildx`` has its own BUILDX_CONFIG and DOCKER_CONFIG: nothing of the user's.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.helpers import REPO

BUILD_TIMEOUT = 1500  # a cold machine compiles buildx first


def buildx_binary() -> str:
    """The pinned buildx, compiled on first use (cached)."""
    out = subprocess.run([str(REPO / "hack" / "build-buildx.sh")], capture_output=True, text=True,
                         timeout=BUILD_TIMEOUT)
    assert out.returncode == 0, out.stderr[-3000:]
    return str(Path(out.stdout.strip()) / "buildx")


@dataclass(frozen=True)
class Run:
    """One finished buildx command."""

    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Buildx:
    """buildx with one remote builder, ``name``, on ``address``."""

    binary: str
    home: Path
    name: str

    @classmethod
    def create(cls, binary: str, home: Path, address: str, name: str = "kb-remote") -> Buildx:
        home.mkdir(parents=True, exist_ok=True)
        made = cls(binary, home, name)
        run = made.run("create", "--name", name, "--driver", "remote", address, builder=False)
        assert run.code == 0, run.stderr
        return made

    def env(self) -> dict[str, str]:
        return {**os.environ, "BUILDX_CONFIG": str(self.home / "buildx"),
                "DOCKER_CONFIG": str(self.home / "docker"), "BUILDX_NO_DEFAULT_LOAD": "1"}

    def run(self, *args: str, builder: bool = True, cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> Run:
        cmd = [self.binary, *(("--builder", self.name) if builder else ()), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env={**self.env(), **(env or {})}, stdin=subprocess.DEVNULL)
        return Run(done.returncode, done.stdout, done.stderr)

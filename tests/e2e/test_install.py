"""`pip install .` and `pipx install .` in throwaway environments: kubectl finds both plugins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO

pytestmark = pytest.mark.e2e

SCRIPTS = ("kubectl-build", "kubectl-buildkit", "kubectl_complete-build", "kubectl_complete-buildkit")


def _run(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


def _check_plugins(bin_dir: Path, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl must be on PATH"
    for name in SCRIPTS:
        assert (bin_dir / name).is_file(), name
    # Only this bin directory and the system's: nothing else may provide the plugins.
    env = {"HOME": str(tmp_path), "PATH": os.pathsep.join([str(bin_dir), str(Path(kubectl).parent), "/bin"])}
    listed = _run([kubectl, "plugin", "list"], env)
    assert listed.stderr == "", listed.stderr
    assert f"{bin_dir / 'kubectl-build'}\n" in listed.stdout
    assert f"{bin_dir / 'kubectl-buildkit'}\n" in listed.stdout
    assert _run([kubectl, "build", "--help"], env).stdout.startswith("Usage: kubectl build ")
    assert _run([kubectl, "buildkit", "--help"], env).stdout.startswith("Usage: kubectl buildkit ")
    completed = _run([kubectl, "__complete", "build", "--pl"], env).stdout
    assert completed.startswith("--platform\t")


def test_pip_install(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], dict(os.environ))
    _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(REPO)],
         dict(os.environ))  # fmt: skip
    _check_plugins(venv / "bin", tmp_path)


def test_pipx_install(tmp_path: Path) -> None:
    tools = tmp_path / "pipx-venv"
    _run([sys.executable, "-m", "venv", str(tools)], dict(os.environ))
    _run([str(tools / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "pipx"],
         dict(os.environ))  # fmt: skip
    env = {**os.environ, "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin")}
    _run([str(tools / "bin" / "pipx"), "install", str(REPO)], env)
    _check_plugins(tmp_path / "bin", tmp_path)

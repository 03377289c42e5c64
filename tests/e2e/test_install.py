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


def _pipx(tmp_path: Path, spec: str) -> Path:
    """``pipx install SPEC`` with the dev lock's pipx, into throwaway homes; its bin dir."""
    env = {**os.environ, "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin"),
           "PIPX_MAN_DIR": str(tmp_path / "man")}
    _run([sys.executable, "-m", "pipx", "install", spec], env)
    return tmp_path / "bin"


def test_pipx_install(tmp_path: Path) -> None:
    _check_plugins(_pipx(tmp_path, str(REPO)), tmp_path)


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and the sdist, built as a release would (PEP 517, the dev lock's setuptools)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir",
          str(out), str(REPO)], dict(os.environ))  # fmt: skip
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_pipx_install_from_a_built_distribution(kind: str, distributions: dict[str, Path],
                                                tmp_path: Path) -> None:
    bin_dir = _pipx(tmp_path, str(distributions[kind]))
    _check_plugins(bin_dir, tmp_path)
    version = _run([str(bin_dir / "kubectl-build"), "--version"], dict(os.environ)).stdout
    assert version.startswith("kubectl-build ")


def test_the_sdist_holds_what_a_build_from_it_needs(distributions: dict[str, Path]) -> None:
    import tarfile

    with tarfile.open(distributions["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE",
                   "kubectl_build/__main__.py", "kubectl_build/py.typed",
                   "kubectl_build/_proto/control_pb2.py"):
        assert needed in names, needed

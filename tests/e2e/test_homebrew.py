"""The release archive laid out the way Homebrew installs packaging/homebrew.py's formula.

Homebrew cannot run here; what its formula does with the archive can. ``libexec.install``
moves the archive's contents into the keg's libexec, ``bin.install_symlink`` links each
program into the keg's bin, and ``brew link`` links those into the prefix's bin, relative
links all. kubectl then finds the plugins through two levels of symlinks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, Testbed
from tests.e2e.release import Release

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

sys.path.insert(0, str(REPO / "packaging"))
import build_release  # noqa: E402
import homebrew  # noqa: E402


def _brew_install(archive: Path, prefix: Path) -> Path:
    """What `brew install` + `brew link` leave: a keg in the Cellar, relative links in bin."""
    keg = prefix / "Cellar" / "kubectl-build" / build_release.version()
    (keg / "libexec").mkdir(parents=True)
    with tarfile.open(archive) as tf:
        tf.extractall(keg / "libexec", filter="data")
    (keg / "bin").mkdir()
    (prefix / "bin").mkdir()
    for name in homebrew.PROGRAMS:
        (keg / "bin" / name).symlink_to(Path("..") / "libexec" / name)
        (prefix / "bin" / name).symlink_to(Path("..") / keg.relative_to(prefix) / "bin" / name)
    return prefix / "bin"


def test_the_formula_names_the_archives_it_was_rendered_from(release: Release, tmp_path: Path) -> None:
    out = tmp_path / "Formula" / "kubectl-build.rb"
    subprocess.run([sys.executable, str(REPO / "packaging" / "homebrew.py"), "--release",
                    str(release.archive.parent), "--base-url", "https://example.invalid/dl",
                    "--out", str(out)], check=True, capture_output=True, timeout=120)  # fmt: skip
    formula = out.read_text()
    url = f"https://example.invalid/dl/v{build_release.version()}/{release.archive.name}"
    linux = formula[formula.index("  on_linux do"):]
    assert f'    on_intel do\n      url "{url}"\n' in linux
    assert "# darwin/arm64: no archive in this release" in formula


def test_programs_linked_into_a_prefix_run_through_kubectl(release: Release, testbed: Testbed,
                                                          tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl must be on PATH"
    bin_dir = _brew_install(release.archive, tmp_path / "homebrew")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "kubectl").symlink_to(kubectl)
    env = {"HOME": str(tmp_path), "PATH": os.pathsep.join([str(bin_dir), str(tools), "/usr/bin", "/bin"])}

    def run(*args: str) -> str:
        done = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=300,
                              stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    assert run("kubectl", "build", "--help").startswith("Usage: kubectl build")
    assert "Manage BuildKit builders" in run("kubectl", "buildkit", "--help")
    assert run("kubectl-build", "--version").startswith(f"kubectl-build {build_release.version()} ")
    assert run("kubectl_complete-build", "--pl").startswith("--platform\t")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    (context / "hello").write_text("linked by brew\n")
    run("kubectl", "build", str(context), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet",
        "-o", f"type=local,dest={tmp_path / 'out'}")
    assert (tmp_path / "out" / "hello").read_text() == "linked by brew\n"

"""The release archive installed the way kubectl users do: with krew, in a throwaway root.

The session builds what is missing and caches it: the linux/amd64 release archive (under
dist/release, rebuilt when the sources are newer) and krew from its Go module (under
~/.cache/kubectl-build). Builds go to the test bed's buildkitd, which must be running.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, Testbed

# A cold first run builds the archive (virtualenv, PyInstaller) and krew: minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

sys.path.insert(0, str(REPO / "packaging"))
import build_release  # noqa: E402
import krew  # noqa: E402

from tests.e2e.release import Release  # noqa: E402


@dataclass
class KrewEnv:
    """A throwaway KREW_ROOT, and a PATH with only its bin, kubectl and kubectl-krew."""

    root: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(args), capture_output=True, text=True, env=self.env, timeout=timeout,
                              check=False)  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if not p.is_dir())


@pytest.fixture
def krew_env(tmp_path: Path) -> KrewEnv:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl must be on PATH"
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "kubectl").symlink_to(kubectl)
    (tools / "kubectl-krew").symlink_to(krew.krew_bin() / "krew")
    root = tmp_path / "krew-root"
    env = {
        "HOME": str(tmp_path),
        "KREW_ROOT": str(root),
        "KREW_NO_UPGRADE_CHECK": "1",
        "PATH": os.pathsep.join([str(root / "bin"), str(tools), "/usr/bin", "/bin"]),
    }
    return KrewEnv(root, env)


def test_manifest_passes_krews_validation(release: Release, tmp_path: Path) -> None:
    validate = krew.krew_bin() / "validate-krew-manifest"
    for manifest, name in ((release.manifest, "build"), (release.companion, "buildkit")):
        named = tmp_path / f"{name}.yaml"  # the validator wants <plugin name>.yaml
        shutil.copy(manifest, named)
        # Its install step downloads `uri` (published only after this test passes);
        # test_krew_install_build_uninstall installs from the archive instead.
        done = subprocess.run([str(validate), "-manifest", str(named), "-skip-install"],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr


def test_archive_layout(release: Release) -> None:
    with tarfile.open(release.archive) as archive:
        members = {m.name: m for m in archive.getmembers()}
    for name in ("kubectl-build", "kubectl-buildkit", "kubectl_complete-build",
                 "kubectl_complete-buildkit", "LICENSE", "README.md"):  # fmt: skip
        assert name in members, name
    assert all(m.isfile() or m.isdir() for m in members.values()), "krew unpacks files and dirs only"
    assert members["kubectl-build"].mode & 0o111 and members["kubectl-buildkit"].mode & 0o111


def test_krew_install_build_uninstall(release: Release, krew_env: KrewEnv, testbed: Testbed,
                                      tmp_path: Path) -> None:  # fmt: skip
    k = krew_env
    # What `kubectl krew update` leaves: a git clone of the index (uninstall insists on
    # one). No network here, so an empty repository stands in for it.
    (k.root / "index" / "default" / ".git").mkdir(parents=True)
    before = k.files()
    for manifest in (release.manifest, release.companion):
        k.run("kubectl", "krew", "install", f"--manifest={manifest}", f"--archive={release.archive}")
    listed = k.run("kubectl", "plugin", "list")
    assert str(k.root / "bin" / "kubectl-build") in listed.stdout
    assert str(k.root / "bin" / "kubectl-buildkit") in listed.stdout
    assert listed.stderr == "", listed.stderr

    help_ = k.run("kubectl", "build", "--help").stdout
    assert help_.startswith("Usage: kubectl build [OPTIONS] PATH | URL | -\n")
    host = testbed.buildkit_host
    versions = k.run("kubectl", "buildkit", "version", "--buildkit-host", host).stdout.splitlines()
    assert versions[0].startswith(f"kubectl-build {build_release.version()} (python 3.")  # frozen deps
    assert versions[1].startswith(f"buildkitd {host}: BuildKit v")

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    (context / "a").write_text("from the krew-installed kubectl-build\n")
    out = tmp_path / "out"
    k.run("kubectl", "build", str(context), "--buildkit-host", host, "--progress", "plain",
          "-o", f"type=local,dest={out}", timeout=600)  # fmt: skip
    assert (out / "a").read_text() == "from the krew-installed kubectl-build\n"

    # The completion hook shipped in the archive (krew links only one bin per plugin).
    store = next((k.root / "store" / "build").iterdir())
    assert (store / "LICENSE").is_file()  # krew-index requires the license in the archive
    hook = k.run(str(store / "kubectl_complete-build"), "--pl").stdout
    assert hook.splitlines()[0].startswith("--platform\t") and hook.endswith(":4\n")

    k.run("kubectl", "krew", "uninstall", "build", "buildkit")
    assert k.files() == before, "krew uninstall left files behind"
    for state in ("bin", "store", "receipts"):
        assert not any((k.root / state).iterdir()), f"{state}/ not empty after uninstall"
    assert "kubectl-build" not in k.run("kubectl", "plugin", "list", check=False).stdout


@contextmanager
def _serving(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on a loopback port, for the manifests' download URLs."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_install_by_name_from_the_custom_index(release: Release, krew_env: KrewEnv,
                                               testbed: Testbed, tmp_path: Path) -> None:
    k = krew_env
    # The central index as `krew update` leaves it, cloned from an empty stand-in (no
    # network here): krew lists every index's remote and updates them all on install.
    central = tmp_path / "central-index"
    (central / "plugins").mkdir(parents=True)
    (central / "plugins" / ".keep").write_text("")
    git_env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    for git in (["init", "-q", "-b", "master"], ["add", "plugins"], ["commit", "-q", "-m", "empty"]):
        subprocess.run(["git", "-C", str(central), *git], check=True, timeout=60, env=git_env)
    (k.root / "index").mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", str(central), str(k.root / "index" / "default")],
                   check=True, timeout=60)
    downloads = tmp_path / "downloads"
    (downloads / f"v{build_release.version()}").mkdir(parents=True)
    shutil.copy(release.archive, downloads / f"v{build_release.version()}" / release.archive.name)
    index = tmp_path / "index-repo"
    with _serving(downloads) as base_url:
        subprocess.run([sys.executable, str(REPO / "packaging" / "krew_index.py"), "--release",
                        str(release.archive.parent), "--base-url", base_url, "--out", str(index),
                        "--commit"], check=True, timeout=120)  # fmt: skip
        k.run("kubectl", "krew", "index", "add", "kubectl-build", str(index))
        assert "kubectl-build" in k.run("kubectl", "krew", "index", "list").stdout
        found = k.run("kubectl", "krew", "search", "build").stdout
        assert "kubectl-build/build" in found and "kubectl-build/buildkit" in found
        k.run("kubectl", "krew", "install", "kubectl-build/build", "kubectl-build/buildkit")
    assert k.run("kubectl", "build", "--help").stdout.startswith("Usage: kubectl build")
    out = tmp_path / "out"
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    (context / "a").write_text("installed from the kubectl-build index\n")
    k.run("kubectl", "build", str(context), "--buildkit-host", testbed.buildkit_host,
          "--progress", "plain", "-o", f"type=local,dest={out}", timeout=600)
    assert (out / "a").read_text() == "installed from the kubectl-build index\n"
    assert "kubectl-build/build" in k.run("kubectl", "krew", "list").stdout
    k.run("kubectl", "krew", "uninstall", "build", "buildkit")
    assert "kubectl-build" not in k.run("kubectl", "plugin", "list", check=False).stdout


def test_the_release_archive_passes_the_workflows_smoke_test(release: Release,
                                                             testbed: Testbed) -> None:
    done = subprocess.run([sys.executable, str(REPO / "packaging" / "smoke.py"), str(release.archive),
                           "--buildkit-host", testbed.buildkit_host], capture_output=True,
                          text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"smoke: kubectl-build {build_release.version()} (python 3.")
    assert "grpcio " in lines[0] and "kubernetes " in lines[0]
    assert lines[-1] == f"smoke: build against {testbed.buildkit_host}: ok"

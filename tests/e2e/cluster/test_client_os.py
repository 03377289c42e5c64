"""Cluster builds from a macOS or a Windows client (tests/portability/shim).

Windows: the bridge listens on a loopback port and kubectl exec runs on pipes copied by
threads. macOS: unix sockets, no splice, so the early exec of a warm build is joined by
copying. Neither starts the local agent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.cluster.support import build, pushing_builder, registry_secret
from tests.e2e.helpers import load_testbed
from tests.e2e.registry_helpers import tls_registry
from tests.portability.clients import CLIENT_OSES, SHIM

pytestmark = [pytest.mark.cluster, pytest.mark.parametrize("client_os", CLIENT_OSES)]


def test_push_then_warm_rebuild(client_os: str, cluster_env: dict[str, str], namespace: str,
                                tmp_path: Path) -> None:
    testbed = load_testbed()
    pushing_builder(cluster_env, namespace)
    registry_secret(cluster_env, namespace)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY stamp /stamp\n")
    agents = tmp_path / "agents"
    client = {"KB_PRETEND_OS": client_os, "PYTHONPATH": str(SHIM),
              "KUBECTL_BUILD_AGENT_DIR": str(agents), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    if client_os == "win32":
        # Windows finds programs by PATHEXT: kubectl is kubectl.exe there.
        windows_bin = tmp_path / "bin"
        windows_bin.mkdir()
        kubectl = shutil.which("kubectl")
        assert kubectl, "kubectl must be on PATH"
        (windows_bin / "kubectl.exe").symlink_to(kubectl)
        client["PATH"] = os.pathsep.join([str(windows_bin), "/usr/bin", "/bin"])
        # set on every Windows (upper case there, but its file names ignore case; not here)
        client["PATHEXT"] = ".exe"
    repo = f"cluster/{namespace}-{client_os}"
    for round_ in ("cold", "warm"):
        (ctx / "stamp").write_text(f"{client_os} {round_}\n")
        run = build(cluster_env, namespace, str(ctx), "-t", f"{testbed.registry_tls}/{repo}:{round_}",
                    "--push", "--debug", extra_env=client)
        assert run.code == 0, run.stderr[-4000:]
        assert tls_registry(testbed).manifest(repo, round_).digest == run.stdout.strip()
    # the warm build dialled the remembered pod: through the exec started at once (macOS,
    # joined by copying), or one started on connect (Windows: pipes)
    assert "dialled remembered builder pod" in run.stderr, run.stderr[-3000:]
    assert not agents.exists()

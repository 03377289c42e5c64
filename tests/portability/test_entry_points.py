"""The CLI's entry points on a macOS or Windows client: help, version, completion, bad input.

No test bed needed: nothing here reaches a daemon. Each run is a fresh interpreter made
to look like the client OS (shim/sitecustomize.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_build.errors import ExitCode
from tests.portability.clients import CLIENT_OSES, Run, pretend_env, run_as

pytestmark = pytest.mark.parametrize("client_os", CLIENT_OSES)


def _one_clear_line(run: Run) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


def test_the_interpreter_really_looks_like_the_client(client_os: str) -> None:
    code = ("import sys, os, socket; print(sys.platform, hasattr(socket, 'SO_PEERCRED'), "
            "hasattr(os, 'splice'), os.path.isdir('/proc/self/fd'))")
    seen = subprocess.run([sys.executable, "-c", code], env=pretend_env(client_os),
                          capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert seen == [client_os, "False", "False", "False"]


def test_help_of_both_plugins(client_os: str) -> None:
    build = run_as(client_os, "kubectl-build", "--help")
    assert (build.code, build.stderr) == (0, "")
    assert build.stdout.startswith("Usage: kubectl build [OPTIONS] PATH | URL | -")
    # a help click renders (not the pre-rendered copy): the whole CLI imports
    sub = run_as(client_os, "kubectl-build", "--platform", "linux/arm64", "--help")
    assert sub.code == 0 and "--platform" in sub.stdout
    buildkit = run_as(client_os, "kubectl-buildkit", "--help")
    assert buildkit.code == 0 and "Manage BuildKit builders" in buildkit.stdout
    for command in ("create", "ls", "rm", "prune"):
        assert run_as(client_os, "kubectl-buildkit", command, "--help").code == 0


def test_version(client_os: str) -> None:
    run = run_as(client_os, "kubectl-build", "--version")
    assert run.code == 0 and run.stdout.startswith("kubectl-build ")


def test_completion(client_os: str) -> None:
    hook = run_as(client_os, "kubectl_complete-build", "--pl")
    assert hook.code == 0, hook.stderr
    assert hook.stdout.splitlines()[0].startswith("--platform\t")
    # PowerShell users complete through kubectl (`kubectl completion powershell` asks the
    # kubectl_complete-build hook above); the scripts are for running kubectl-build itself.
    for shell in ("bash", "zsh", "fish"):
        script = run_as(client_os, "kubectl-build", "completion", shell)
        assert script.code == 0 and script.stdout, (shell, script.stderr)


def test_a_missing_context_is_one_clear_line(client_os: str, tmp_path: Path) -> None:
    run = run_as(client_os, "kubectl-build", str(tmp_path / "missing"), cwd=tmp_path)
    assert run.code == ExitCode.CONTEXT
    assert _one_clear_line(run).startswith('error: build context "')


def test_a_bad_platform_is_a_usage_error(client_os: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    run = run_as(client_os, "kubectl-build", str(tmp_path), "--platform", "linux/nope!")
    assert run.code == ExitCode.USAGE
    assert "platform" in _one_clear_line(run)


def test_no_cluster_is_a_cluster_error_and_no_agent_is_left(client_os: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    agents = tmp_path / "agents"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none"),
           "KUBECTL_BUILD_AGENT_DIR": str(agents), "BUILDKIT_HOST": ""}
    run = run_as(client_os, "kubectl-build", str(tmp_path), env=env)
    assert run.code == ExitCode.CLUSTER, run.stderr
    _one_clear_line(run)
    assert not agents.exists()  # the agent is Linux-only: never started, never imported


def test_ssh_forwarding_says_what_windows_lacks(client_os: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    run = run_as(client_os, "kubectl-build", str(tmp_path), "--ssh", "default",
                 "--buildkit-host", "tcp://127.0.0.1:9", env={"SSH_AUTH_SOCK": ""})
    line = _one_clear_line(run)
    assert run.code == ExitCode.USAGE
    if client_os == "win32":
        assert "needs unix sockets" in line
    else:
        assert "SSH_AUTH_SOCK is not set" in line

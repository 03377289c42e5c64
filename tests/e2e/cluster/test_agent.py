"""The local agent on the real cluster: later builds run by a forked, pre-imported copy.

Each test has its own agent folder (so its own agent) and stops it at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_build.agent import wire
from kubectl_build.errors import ExitCode
from tests.conftest import stop_agents
from tests.e2e.cluster import support
from tests.e2e.cluster.support import static_busybox_context
from tests.e2e.helpers import Run, cli_path, run_cli
from tests.e2e.release import Release

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]
RAN_BY_AGENT = "run by the local agent"


@pytest.fixture
def namespace(cluster_env: dict[str, str]) -> Iterator[str]:
    with support.namespace(cluster_env, "kb-agent") as name:
        yield name


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "agents"
    yield folder
    stop_agents(folder)


def _env(cluster_env: dict[str, str], tmp_path: Path, agents: Path, **extra: str) -> dict[str, str]:
    return {"KUBECONFIG": cluster_env["KUBECONFIG"], "XDG_CACHE_HOME": str(tmp_path / "cache"),
            wire.FOLDER: str(agents), **extra}


def _build(env: dict[str, str], namespace: str, *args: str, cwd: Path | None = None,
           stdin: bytes | None = None) -> Run:
    return run_cli(*args, "-n", namespace, "--progress", "plain", "--debug", env=env,
                   cwd=str(cwd) if cwd else None, stdin=stdin, timeout=300)


def _agent_pid(agents: Path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pidfile in agents.glob("*.pid"):
            pid = int(pidfile.read_text())
            if _alive(pid) and pidfile.with_suffix("").exists():
                return pid
        time.sleep(0.2)
    raise AssertionError(f"no agent started in {agents}: {list(agents.glob('*'))}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return False


def _echo_context(tmp_path: Path) -> Path:
    ctx = static_busybox_context(tmp_path, "x")
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nARG MSG\n"
        'RUN ["/bin/busybox", "sh", "-c", "echo $MSG > /msg"]\n'
        "FROM scratch\nCOPY --from=0 /msg /msg\n")
    return ctx


def test_later_builds_run_in_the_agent_with_the_callers_world(
        cluster_env: dict[str, str], namespace: str, tmp_path: Path, agents: Path) -> None:
    ctx = _echo_context(tmp_path)
    env = _env(cluster_env, tmp_path, agents)
    first = _build({**env, "MSG": "first"}, namespace, str(ctx), "--build-arg", "MSG",
                   "-o", str(tmp_path / "out1"))
    assert first.code == 0, first.stderr
    assert RAN_BY_AGENT not in first.stderr
    assert (tmp_path / "out1" / "msg").read_text() == "first\n"
    pid = _agent_pid(agents)

    # The copy takes the caller's environment (--build-arg from it), its working
    # directory (a relative output path) and its streams (stdout/stderr captured here).
    work = tmp_path / "work"
    work.mkdir()
    second = _build({**env, "MSG": f"second {uuid.uuid4()}"}, namespace, str(ctx),
                    "--build-arg", "MSG", "-o", "out2", cwd=work)
    assert second.code == 0, second.stderr
    assert f"{RAN_BY_AGENT} (pid {pid})" in second.stderr
    assert (work / "out2" / "msg").read_text().startswith("second ")
    assert "solve sent" in second.stderr

    # Same target, same environment: the exec the agent started after the second build
    # is the one the third adopts.
    third_env = {**env, "MSG": "third"}
    _build(third_env, namespace, str(ctx), "--build-arg", "MSG", "-o", str(tmp_path / "warmup"))
    third = _build(third_env, namespace, str(ctx), "--build-arg", "MSG", "-o", str(tmp_path / "o3"))
    assert third.code == 0, third.stderr
    assert "exec kept ready: yes" in third.stderr
    assert "(exec kept ready by the local agent)" in third.stderr
    assert (tmp_path / "o3" / "msg").read_text() == "third\n"
    assert _alive(pid)


def test_stdin_context_and_failure_code_through_the_agent(
        cluster_env: dict[str, str], namespace: str, tmp_path: Path, agents: Path) -> None:
    env = _env(cluster_env, tmp_path, agents)
    ctx = static_busybox_context(tmp_path, "x")
    assert _build(env, namespace, str(ctx)).code == 0
    _agent_pid(agents)
    dockerfile = (b"FROM scratch\nCOPY busybox /bin/busybox\n"
                  b'RUN ["/bin/busybox", "sh", "-c", "echo failing-on-purpose; exit 3"]\n')
    failed = _build(env, namespace, str(ctx), "-f", "-", stdin=dockerfile)
    assert RAN_BY_AGENT in failed.stderr
    assert failed.code == ExitCode.BUILD_FAILED, failed.stderr
    assert "failing-on-purpose" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("error: ")
    # Without --debug: the same one error line, no traceback.
    quiet = run_cli(str(ctx), "-f", "-", "-n", namespace, "--progress", "plain", env=env,
                    stdin=dockerfile, timeout=300)
    assert quiet.code == ExitCode.BUILD_FAILED, quiet.stderr
    assert "Traceback" not in quiet.stderr and "debug:" not in quiet.stderr
    assert quiet.stderr.strip().splitlines()[-1].startswith("error: ")


def test_ctrl_c_reaches_the_build_in_the_agent(
        cluster_env: dict[str, str], namespace: str, tmp_path: Path, agents: Path) -> None:
    env = _env(cluster_env, tmp_path, agents)
    ctx = static_busybox_context(tmp_path, "x")
    assert _build(env, namespace, str(ctx)).code == 0
    agent = _agent_pid(agents)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n"
                                    f'RUN ["/bin/busybox", "sh", "-c", "echo {uuid.uuid4()}; '
                                    'exec /bin/busybox sleep 300"]\n')
    proc = subprocess.Popen([cli_path(), str(ctx), "-n", namespace, "--progress", "plain",
                             "--debug"], stderr=subprocess.PIPE, env={**os.environ, **env})
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 120
    while b"sleep 300" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read1(4096)  # type: ignore[attr-defined]
    assert RAN_BY_AGENT.encode() in seen, seen.decode(errors="replace")
    copies_before = _children(agent)
    assert copies_before, "the agent has no copy running the build"
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = proc.stderr.read().decode(errors="replace")
    assert code == ExitCode.INTERRUPTED, rest
    assert "CANCELED" in rest  # the daemon stopped the build, as with Ctrl-C in-process
    assert all(_gone(pid, 30) for pid in copies_before)
    assert _alive(agent)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "kubectl " not in line]


def test_changed_code_switch_and_idle_exit(
        cluster_env: dict[str, str], namespace: str, tmp_path: Path, agents: Path) -> None:
    ctx = static_busybox_context(tmp_path, "x")
    off = _env(cluster_env, tmp_path, agents, **{wire.SWITCH: "0"})
    assert _build(off, namespace, str(ctx)).code == 0
    # Starting an agent creates its folder before the CLI exits: switched off, none exists.
    assert not agents.exists(), list(agents.glob("*"))

    env = _env(cluster_env, tmp_path, agents, **{wire.IDLE: "4"})
    assert _build(env, namespace, str(ctx)).code == 0
    old = _agent_pid(agents)
    # Changed code on disk: the agent refuses (its copies would run the old code) and
    # exits; the CLI builds itself and leaves a new agent.
    marker = Path(wire.__file__)
    stat = marker.stat()
    os.utime(marker, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))
    try:
        changed = _build(env, namespace, str(ctx))
    finally:
        os.utime(marker, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert changed.code == 0, changed.stderr
    assert RAN_BY_AGENT not in changed.stderr
    assert _gone(old, 10)
    new = _agent_pid(agents)
    assert new != old
    # Idle for its idle time (4 s here): it exits and removes its socket.
    assert _gone(new, 15)
    assert not list(agents.glob("*.sock"))


@pytest.mark.timeout(2400)  # a cold first run builds the release archive
def test_the_release_executable_leaves_and_uses_an_agent(
        release: Release, cluster_env: dict[str, str], namespace: str, tmp_path: Path,
        agents: Path) -> None:
    unpacked = tmp_path / "release"
    with tarfile.open(release.archive) as archive:
        archive.extractall(unpacked, filter="data")
    exe = unpacked / "kubectl-build"
    ctx = _echo_context(tmp_path)
    env = {**os.environ, **_env(cluster_env, tmp_path, agents), "MSG": "frozen"}

    def build(out: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), str(ctx), "-n", namespace, "--progress", "plain",
                               "--debug", "--build-arg", "MSG", "-o", str(tmp_path / out)],
                              capture_output=True, text=True, env=env, timeout=300, check=False)

    first = build("one")
    assert first.returncode == 0, first.stderr
    assert RAN_BY_AGENT not in first.stderr
    pid = _agent_pid(agents)
    assert Path(f"/proc/{pid}/exe").resolve() == exe.resolve()  # the executable itself serves
    second = build("two")
    assert second.returncode == 0, second.stderr
    assert f"{RAN_BY_AGENT} (pid {pid})" in second.stderr
    assert (tmp_path / "two" / "msg").read_text() == "frozen\n"

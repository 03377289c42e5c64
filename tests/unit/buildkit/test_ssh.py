"""The SSH forwarding session service against real unix sockets and a real ssh-agent."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kubectl_build.buildkit.session.h2stream import AbortError, RpcStream
from kubectl_build.buildkit.session.ssh import AgentPool, SSHService
from kubectl_build.buildkit.wire import decode_bytes_message, encode_bytes_message
from kubectl_build.errors import UsageError

WAIT = 10.0


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory short enough for unix socket paths (~100 bytes at most)."""
    with tempfile.TemporaryDirectory(prefix="kb-ssh-t-") as folder:
        yield Path(folder)


class _UpperAgent:
    """A stand-in agent socket: answers every chunk upper-cased, then closes on EOF."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.got = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while chunk := conn.recv(65536):
                self.got += chunk
                conn.sendall(chunk.upper())
        self.listener.close()


def test_no_path_means_the_users_agent(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _UpperAgent(short_dir / "agent.sock")
    monkeypatch.setenv("SSH_AUTH_SOCK", agent.path)
    pool = AgentPool()
    pool.add("default", ())
    assert pool.sockets == {"default": agent.path}


def test_no_path_and_no_agent_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(UsageError) as info:
        AgentPool().add("default", ())
    assert info.value.message == "--ssh default: SSH_AUTH_SOCK is not set"


def test_key_files_without_ssh_agent_installed_are_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UsageError) as info:
        AgentPool().add("git", (str(tmp_path / "id_ed25519"),))
    assert "need ssh-agent" in info.value.message


def test_key_files_are_loaded_into_a_private_agent_stopped_on_close(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kb-test", "-f", str(key)],
                   check=True, timeout=30, stdin=subprocess.DEVNULL)
    pool = AgentPool()
    try:
        pool.add("git", (str(key),))
        sock = pool.sockets["git"]
        listed = subprocess.run(["ssh-add", "-l"], env={**os.environ, "SSH_AUTH_SOCK": sock},
                                capture_output=True, text=True, timeout=30, check=False)
        assert listed.returncode == 0 and "kb-test" in listed.stdout
    finally:
        pool.close()
    assert not os.path.exists(sock)


def test_a_bad_key_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-key"
    bad.write_text("hello\n")
    pool = AgentPool()
    try:
        with pytest.raises(UsageError) as info:
            pool.add("git", (str(bad),))
        assert info.value.message == f"--ssh git: cannot load key {bad}"
    finally:
        pool.close()


def test_check_agent_knows_only_registered_ids(short_dir: Path) -> None:
    pool = AgentPool()
    pool.sockets["git"] = str(short_dir / "agent.sock")
    service = SSHService(pool)
    context = RpcStream(1, [])
    assert service.check_agent(encode_bytes_message(b"git"), context) == b""  # type: ignore[arg-type]
    with pytest.raises(AbortError) as info:
        service.check_agent(encode_bytes_message(b"other"), context)  # type: ignore[arg-type]
    assert (info.value.code, info.value.details) == (grpc.StatusCode.NOT_FOUND,
                                                      "unset ssh forward key other")


def test_forward_agent_bridges_bytes_both_ways(short_dir: Path) -> None:
    agent = _UpperAgent(short_dir / "agent.sock")
    pool = AgentPool()
    pool.sockets["git"] = agent.path
    requests = iter([encode_bytes_message(b"hello "), encode_bytes_message(b"agent")])
    context = RpcStream(1, [("buildkit.ssh.id", "git")])
    answers = SSHService(pool).forward_agent(requests, context)  # type: ignore[arg-type]
    got = b"".join(decode_bytes_message(m) for m in answers)  # ends when the agent closes
    agent.thread.join(WAIT)
    assert bytes(agent.got) == b"hello agent"
    assert got == b"HELLO AGENT"

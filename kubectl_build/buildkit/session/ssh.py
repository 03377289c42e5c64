"""moby.sshforward.v1.SSH: forward ssh-agent connections into RUN --mount=type=ssh.

An id maps to an agent socket: the user's ($SSH_AUTH_SOCK or a given path), or a
private ssh-agent we start and load key files into, stopped with the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import grpc

from kubectl_build.buildkit.wire import decode_bytes_message, encode_bytes_message, identity
from kubectl_build.errors import UsageError


class AgentPool:
    """Resolved agent sockets per id, owning any private agents it started."""

    def __init__(self) -> None:
        self.sockets: dict[str, str] = {}
        self._agents: list[subprocess.Popen[bytes]] = []
        self._dirs: list[str] = []

    def add(self, ssh_id: str, paths: tuple[str, ...]) -> None:
        """Register an id: no path = $SSH_AUTH_SOCK, a socket path, or key files."""
        if not paths:
            sock = os.environ.get("SSH_AUTH_SOCK")
            if not sock:
                raise UsageError(f"--ssh {ssh_id}: SSH_AUTH_SOCK is not set",
                                 "start an ssh-agent or pass --ssh ID=/path/to/key")
            paths = (sock,)
        if len(paths) == 1 and _is_socket(paths[0]):
            self.sockets[ssh_id] = paths[0]
            return
        self.sockets[ssh_id] = self._private_agent(ssh_id, paths)

    def _private_agent(self, ssh_id: str, keys: tuple[str, ...]) -> str:
        if shutil.which("ssh-agent") is None:
            raise UsageError(f"--ssh {ssh_id}: key files need ssh-agent, which is not installed",
                             "install openssh-client or pass an agent socket")
        tmp = tempfile.mkdtemp(prefix="kb-ssh-")
        self._dirs.append(tmp)
        sock = os.path.join(tmp, "agent.sock")
        agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self._agents.append(agent)
        _wait_for_socket(sock, ssh_id)
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        for key in keys:
            done = subprocess.run(["ssh-add", "-q", key], env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=30, check=False)
            if done.returncode != 0:
                raise UsageError(f"--ssh {ssh_id}: cannot load key {key}",
                                 "check the file is a private key without a passphrase")
        return sock

    def close(self) -> None:
        """Stop private agents."""
        for agent in self._agents:
            agent.terminate()
            try:
                agent.wait(timeout=5)
            except subprocess.TimeoutExpired:
                agent.kill()
        for tmp in self._dirs:
            shutil.rmtree(tmp, ignore_errors=True)


def _is_socket(path: str) -> bool:
    import stat

    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _wait_for_socket(path: str, ssh_id: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while not _is_socket(path):
        if time.monotonic() > deadline:
            raise UsageError(f"--ssh {ssh_id}: ssh-agent did not start", "retry with --debug")
        time.sleep(0.02)


class SSHService:
    """Bridges each ForwardAgent stream to a fresh agent connection."""

    name = "moby.sshforward.v1.SSH"

    def __init__(self, pool: AgentPool) -> None:
        self.pool = pool

    def handlers(self) -> Mapping[str, grpc.RpcMethodHandler[Any, Any]]:
        """Method name → handler."""
        return {
            "CheckAgent": grpc.unary_unary_rpc_method_handler(
                self.check_agent, request_deserializer=identity, response_serializer=identity),
            "ForwardAgent": grpc.stream_stream_rpc_method_handler(
                self.forward_agent, request_deserializer=identity, response_serializer=identity),
        }

    def _socket_for(self, ssh_id: str, context: grpc.ServicerContext) -> str:
        path = self.pool.sockets.get(ssh_id or "default")
        if path is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unset ssh forward key {ssh_id}")
        assert path is not None
        return path

    def check_agent(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """CheckAgentRequest{1: id} → empty response when we know the id."""
        self._socket_for(decode_bytes_message(request).decode(), context)
        return b""

    def forward_agent(self, requests: Iterator[bytes],
                      context: grpc.ServicerContext) -> Iterator[bytes]:
        """Raw agent protocol both ways."""
        ids = [v for k, v in context.invocation_metadata() or () if k == "buildkit.ssh.id"]
        path = self._socket_for(str(ids[0]) if ids else "default", context)
        agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        agent.connect(path)

        def upstream() -> None:
            try:
                for message in requests:
                    agent.sendall(decode_bytes_message(message))
            except (grpc.RpcError, OSError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    agent.shutdown(socket.SHUT_WR)

        threading.Thread(target=upstream, name="kb-ssh-up", daemon=True).start()
        try:
            while chunk := agent.recv(65536):
                yield encode_bytes_message(chunk)
        finally:
            agent.close()

"""The CLI's side: hand a build to the agent, or start one for next time.

Everything here runs before the heavy imports (a delegated build imports nothing
else), and every failure to reach a usable agent means "run the build here". Nothing here
writes to the terminal: the one failure to report (a build that vanished) is raised for
the entry's one mapping, and the exit codes' table is imported only on the paths that
need one (kubectl_build.errors costs a delegated build a few milliseconds otherwise).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import struct
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from kubectl_build.agent import wire

CONNECT_TIMEOUT = 2.0
"""Seconds to wait for the agent's answer before running the build here instead."""

# Imported only where host.facts.agent_blocker() allows the agent (Linux): SIGHUP exists.
_FORWARDED = {signal.SIGINT: wire.INTERRUPT, signal.SIGTERM: wire.TERMINATE,
              signal.SIGHUP: wire.HANGUP}


def delegate(argv: Sequence[str]) -> int | None:
    """Run the build in the agent and return its exit code; None to run it here.

    Raises:
        KubectlBuildError: the build ended without reporting a result.
    """
    if not wire.wants_agent(argv, os.environ):
        return None
    if not _standard_streams_open():
        return None  # a closed one's number may be the socket's: nothing to hand over
    path = wire.socket_path(os.environ)
    # Our environment and terminal go to whoever listens there: only to ourselves.
    if len(path) > wire.MAX_SOCKET_PATH or not _private_folder(os.path.dirname(path),
                                                                create=False):
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(CONNECT_TIMEOUT)
        conn.connect(path)
        if _peer_uid(conn) != os.getuid():
            raise ConnectionRefusedError(path)
        _send(conn, argv)
        answer = conn.recv(1)
    except OSError:
        conn.close()
        return None
    if answer != wire.ACCEPTED:
        conn.close()
        return None
    conn.settimeout(None)
    return _follow(conn)


def _standard_streams_open() -> bool:
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def _send(conn: socket.socket, argv: Sequence[str]) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    request = wire.encode_request(wire.Request(
        tuple(argv), os.getcwd(), dict(os.environ), umask,
        getattr(sys.stdout, "encoding", None) or "utf-8",
        getattr(sys.stdout, "errors", None) or "strict"))
    # The standard streams travel with the first bytes; the copy writes to them directly.
    socket.send_fds(conn, [request[:4]], [0, 1, 2])
    conn.sendall(request[4:])


def _follow(conn: socket.socket) -> int:
    """Forward signals to the build until it reports its exit code."""
    received: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        with contextlib.suppress(OSError):
            conn.send(_FORWARDED[signal.Signals(signum)])

    previous: dict[signal.Signals, Callable[[int, FrameType | None], object] | int | None] = {}
    for signum in _FORWARDED:
        previous[signum] = signal.signal(signum, forward)
    try:
        reply = _read_reply(conn)
    finally:
        conn.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if reply is not None:
        return reply
    if received and received[-1] != signal.SIGINT:
        # Killed by it, as the build was: end the same way.
        signal.signal(received[-1], signal.SIG_DFL)
        os.kill(os.getpid(), received[-1])
    from kubectl_build.errors import ExitCode, KubectlBuildError

    if received:
        return ExitCode.INTERRUPTED
    raise KubectlBuildError("the build ended without reporting a result (its process was killed)",
                            f"rerun it, or set {wire.SWITCH}=0 to build without the agent")


def _read_reply(conn: socket.socket) -> int | None:
    data = b""
    while True:
        chunk = conn.recv(64)
        if not chunk:
            return None
        data += chunk
        if len(data) >= 5:
            return wire.decode_code(data[1:5]) if data[:1] == wire.CODE else None


def start(argv: Sequence[str]) -> None:
    """After a build run here: leave an agent behind for the next one (best effort)."""
    if not wire.wants_agent(argv, os.environ):
        return
    path = wire.socket_path(os.environ)
    if len(path) > wire.MAX_SOCKET_PATH or not _private_folder(os.path.dirname(path)):
        return
    import subprocess

    if getattr(sys, "frozen", False):  # the release executable (packaging/entry.py)
        command, env = [sys.executable], {**os.environ, wire.SERVE: path}
    else:
        command, env = [sys.executable, "-m", "kubectl_build.agent", path], None
    with contextlib.suppress(OSError):
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, cwd="/", close_fds=True,
                         start_new_session=True, env=env)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _private_folder(folder: str, *, create: bool = True) -> bool:
    """The socket's folder exists, is ours and nobody else may enter it."""
    try:
        if create:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & 0o077)

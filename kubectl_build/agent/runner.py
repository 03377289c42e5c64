"""The agent's forked copy: become the caller's process, run its build, report back.

The copy is forked from the agent (server.py) with everything imported; it takes over
the caller's standard streams, directory, umask and environment, runs the build with
the function the agent was started with, and reports to the agent which pod to keep an
exec ready for next time.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from subprocess import Popen
from typing import NoReturn

from kubectl_build.agent import wire
from kubectl_build.agent.warm_exec import Spare, WarmStart
from kubectl_build.console import Console
from kubectl_build.errors import ExitCode
from kubectl_build.host.process import process_start

RunBuild = Callable[[list[str], float, WarmStart], int]
"""Runs one ``kubectl build`` in this process: its arguments, the monotonic time its
invocation started (the caller's), and the invocation's warm path. Given to the agent by
whoever starts it (the entry module), so the agent never imports the CLI it serves."""


@dataclass
class SpareExec:
    """The exec kept connected for the next build."""

    key: tuple[str, str, str, tuple[str, ...]]
    env: str
    process: Popen[bytes]
    sock: socket.socket


@dataclass
class Handoff:
    """One accepted request, as the forked copy receives it."""

    request: wire.Request
    caller: int
    """The caller's pid."""
    conn: socket.socket
    fds: list[int]
    """The caller's stdin, stdout and stderr."""
    spare: SpareExec | None
    report: int
    """Write end of the pipe the agent reads the next build's target from."""


def run_copy(handoff: Handoff, keep: tuple[int, ...], run_build: RunBuild) -> NoReturn:
    """Run one build in the forked copy and end the process with its exit code."""
    code: int = ExitCode.FAILURE
    conn = handoff.conn
    try:
        _close_inherited(keep)
        _adopt_caller(handoff.request, handoff.fds)
    except BaseException:  # noqa: BLE001 - whatever it is, this process must end here
        # Not the caller's world (its directory is gone, say): it builds itself.
        with contextlib.suppress(OSError):
            conn.sendall(wire.REFUSED)
        os._exit(ExitCode.OK)
    try:
        conn.settimeout(None)
        conn.sendall(wire.ACCEPTED)
        threading.Thread(target=_watch_caller, args=(conn,), name="kb-agent-caller",
                         daemon=True).start()
        gc.enable()
        warm = _warm_start(handoff)
        code = run_build(list(handoff.request.argv), process_start(handoff.caller), warm)
        _report(handoff.report, warm)
    finally:
        # The caller closes its end once it has the code: that must not interrupt us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(wire.encode_code(code))
        os._exit(code)


def _close_inherited(keep: tuple[int, ...]) -> None:
    """Close what the copy inherited from the agent but does not use.

    The listener, the lock file, other copies' report pipes...
    """
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) not in keep:
            with contextlib.suppress(OSError):
                os.close(int(name))


def _adopt_caller(request: wire.Request, fds: list[int]) -> None:
    """Become the caller's process: its streams, directory, umask and environment."""
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request.cwd)
    os.umask(request.umask)
    os.environ.clear()
    os.environ.update(request.env)
    sys.stdin = _text(0, request.encoding, request.errors, line_buffering=False)
    sys.stdout = _text(1, request.encoding, request.errors, line_buffering=os.isatty(1))
    sys.stderr = _text(2, request.encoding, "backslashreplace", line_buffering=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)


def _text(fd: int, encoding: str, errors: str, *, line_buffering: bool) -> io.TextIOWrapper:
    """A standard stream on ``fd`` made the way the interpreter makes them at start-up."""
    raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
    buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
    return io.TextIOWrapper(buffered, encoding=encoding, errors=errors,
                            line_buffering=line_buffering)


def _watch_caller(conn: socket.socket) -> None:
    """Deliver the caller's signals; a vanished caller counts as Ctrl-C (clean cancel)."""
    signals = {wire.INTERRUPT: signal.SIGINT, wire.TERMINATE: signal.SIGTERM,
               wire.HANGUP: signal.SIGHUP}
    while True:
        try:
            byte = conn.recv(1)
        except OSError:
            byte = b""
        os.kill(os.getpid(), signals.get(byte, signal.SIGINT))
        if not byte:
            return


def _warm_start(handoff: Handoff) -> WarmStart:
    """The build's warm path, holding the exec the agent kept ready (if any)."""
    spare = handoff.spare
    debug = "--debug" in handoff.request.argv
    Console(debug=debug).trace(f"run by the local agent (pid {os.getppid()}); exec kept "
                               f"ready: {'yes' if spare is not None else 'no'}")
    if spare is None:
        return WarmStart()
    return WarmStart(spare=Spare(spare.key, spare.env, spare.process.pid, spare.sock))


def _report(fd: int, warm: WarmStart) -> None:
    target = warm.next_target()
    with contextlib.suppress(OSError):
        if target is not None:
            os.write(fd, json.dumps(target).encode())
        os.close(fd)

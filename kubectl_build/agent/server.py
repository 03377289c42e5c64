"""The agent: import everything once, then fork a ready copy for each build.

The agent stays single-threaded (forking a process with threads copies locks other
threads held) and starts no grpc channel: each forked copy initialises its own. It
keeps at most one spare `kubectl exec` into the pod the last build used; the next
copy inherits it and adopts it when its build goes to the same pod with the same
environment (kube.prespawn). The agent exits after its idle time, when its code on
disk changed (the copy would run old code), or on SIGTERM.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import io
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import NoReturn

from kubectl_build.agent import wire

PACKAGE = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT = 5.0
"""Seconds a connected caller has to send its whole request."""
TICK = 1.0
"""Seconds between housekeeping rounds (reaping, idle check)."""


def preload() -> None:
    """Import what a build needs, so a forked copy starts with it done."""
    # The API client only serves cold paths (creating a builder, listing nodes), slow anyway.
    import kubernetes.client  # noqa: F401

    import kubectl_build.cli.commands
    import kubectl_build.progress  # noqa: F401


def fingerprint(root: Path = PACKAGE) -> str:
    """Digest of the package's files as on disk (names, sizes, modification times).

    In the frozen release, whose modules live inside the executable, the executable's
    path, size and modification time are part of it too.
    """
    digest = hashlib.sha256()
    if getattr(sys, "frozen", False):
        info = os.stat(sys.executable)
        digest.update(f"{sys.executable}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".so")):
                info = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dataclass
class SpareExec:
    """The exec kept connected for the next build."""

    key: tuple[str, str, str, tuple[str, ...]]
    env: str
    process: Popen[bytes]
    sock: socket.socket


@dataclass
class Agent:
    """The serving loop: accepts callers on `listener` and forks a copy per build.

    `code` is the package's fingerprint when the agent started: once the files on disk no
    longer match it, the agent refuses the caller (who then builds itself) and stops. It
    also stops after `idle` seconds without a caller while no copy runs.
    """

    listener: socket.socket
    code: str
    idle: float
    spare: SpareExec | None = None
    # pid of a forked copy -> the spare handed to it (stopped once the copy is gone)
    copies: dict[int, SpareExec | None] = field(default_factory=dict)
    # report pipe (read end) -> bytes read so far
    reports: dict[int, bytes] = field(default_factory=dict)
    last: float = field(default_factory=time.monotonic)
    stopping: bool = False

    def serve(self) -> None:
        """Serve until stopped (idle, or the code on disk changed), then clean up."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.listener, selectors.EVENT_READ)
            while not self.stopping:
                for key, _ in sel.select(TICK):
                    if key.fileobj is self.listener:
                        self._accept(sel)
                    else:
                        self._read_report(sel, int(key.fd))
                self._housekeeping()
        self._shutdown()

    # ------------------------------------------------------------------ requests

    def _accept(self, sel: selectors.BaseSelector) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.last = time.monotonic()
        fds: list[int] = []
        try:
            request, fds, caller = self._receive(conn)
            if request is None or fingerprint() != self.code:
                # Changed code: the caller builds with it itself and starts a new agent.
                self.stopping = request is not None
                conn.sendall(wire.REFUSED)
                return
            self._fork(sel, conn, fds, request, caller)
        except (OSError, ValueError):
            pass
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            conn.close()

    def _receive(self, conn: socket.socket) -> tuple[wire.Request | None, list[int], int]:
        """The request, the caller's three streams and the caller's pid."""
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            return None, [], pid
        conn.settimeout(REQUEST_TIMEOUT)
        header, fds, _, _ = socket.recv_fds(conn, 4, 3)
        while len(header) < 4:
            more = conn.recv(4 - len(header))
            if not more:
                return None, fds, pid
            header += more
        length = wire.request_length(header)
        body = bytearray()
        while len(body) < length:
            more = conn.recv(min(1 << 16, length - len(body)))
            if not more:
                return None, fds, pid
            body += more
        if len(fds) != 3:
            return None, fds, pid
        return wire.decode_request(bytes(body)), fds, pid

    def _fork(self, sel: selectors.BaseSelector, conn: socket.socket, fds: list[int],
              request: wire.Request, caller: int) -> None:
        spare, self.spare = self.spare, None
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            _copy(request, caller, conn, fds, spare, write_end)
        os.close(write_end)
        if spare is not None:
            spare.sock.close()
        self.copies[pid] = spare
        os.set_blocking(read_end, False)
        self.reports[read_end] = b""
        sel.register(read_end, selectors.EVENT_READ)

    # ------------------------------------------------------------------ spare exec

    def _read_report(self, sel: selectors.BaseSelector, fd: int) -> None:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self.reports[fd] += chunk
            return
        sel.unregister(fd)
        os.close(fd)
        report = self.reports.pop(fd)
        if report:
            with contextlib.suppress(ValueError, KeyError, TypeError, OSError):
                self._prepare_spare(json.loads(report))

    def _prepare_spare(self, target: Mapping[str, object]) -> None:
        from kubectl_build.kube import prespawn

        raw_key, raw_env = target["key"], target["env"]
        if not isinstance(raw_key, list) or len(raw_key) != 4 or not isinstance(raw_env, dict):
            return
        namespace, pod, container, args = raw_key
        env = {str(k): str(v) for k, v in raw_env.items()}
        key = (str(namespace), str(pod), str(container), tuple(str(a) for a in args))
        digest = wire.env_digest(env)
        if self.spare is not None and (self.spare.key, self.spare.env) == (key, digest) \
                and self.spare.process.poll() is None:
            return
        self._drop_spare()
        kubectl = shutil.which("kubectl", path=env.get("PATH"))
        if kubectl is None:
            return
        started = prespawn.spawn_exec(prespawn.exec_command(kubectl, *key), env=env,
                                      cwd=str(target["cwd"]))
        if started is not None:
            self.spare = SpareExec(key, digest, *started)

    def _drop_spare(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            spare.sock.close()
            _stop(spare.process)

    # ------------------------------------------------------------------ housekeeping

    def _housekeeping(self) -> None:
        while self.copies:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self.copies:
                handed = self.copies.pop(pid)
                if handed is not None:
                    _stop(handed.process)
        if self.spare is not None and self.spare.process.poll() is not None:
            self._drop_spare()
        if not self.copies and time.monotonic() - self.last > self.idle:
            self.stopping = True

    def _shutdown(self) -> None:
        self._drop_spare()
        self.listener.close()


def _spare_fds(spare: SpareExec | None) -> tuple[int, ...]:
    return () if spare is None else (spare.sock.fileno(),)


def _stop(process: Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except Exception:  # noqa: BLE001 - a kubectl that ignores SIGTERM
            process.kill()


# ---------------------------------------------------------------------- the forked copy

def _copy(request: wire.Request, caller: int, conn: socket.socket, fds: list[int],
          spare: SpareExec | None, report: int) -> NoReturn:
    """Run one build in the forked copy and end the process with its exit code.

    Args:
        request: The caller's build request.
        caller: The caller's pid.
        conn: The connection to the caller (answers and the exit code go there).
        fds: The caller's stdin, stdout and stderr, received over `conn`.
        spare: The warm exec this copy may use, or None.
        report: The write end of the pipe on which the copy reports to the agent.
    """
    code = 1
    try:
        _close_inherited((conn.fileno(), report, *fds, *_spare_fds(spare)))
        _adopt_caller(request, fds)
    except BaseException:  # noqa: BLE001 - whatever it is, this process must end here
        # Not the caller's world (its directory is gone, say): it builds itself.
        with contextlib.suppress(OSError):
            conn.sendall(wire.REFUSED)
        os._exit(0)
    try:
        conn.settimeout(None)
        conn.sendall(wire.ACCEPTED)
        threading.Thread(target=_watch_caller, args=(conn,), name="kb-agent-caller",
                         daemon=True).start()
        gc.enable()
        code = _run_build(request, caller, spare)
        _report(report)
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
    """Close every inherited descriptor above stderr that is not in `keep`.

    That is what the copy inherited from the agent but does not use: the listener, the
    lock file, other copies' report pipes...
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


def _run_build(request: wire.Request, caller: int, spare: SpareExec | None) -> int:
    from kubectl_build import __main__ as entry
    from kubectl_build.kube import prespawn
    from kubectl_build.run import build

    build.time_from(caller)
    if spare is not None:
        prespawn.offer(prespawn.Spare(spare.key, spare.env, spare.process.pid, spare.sock))
    if "--debug" in request.argv:
        sys.stderr.write(f"debug: run by the local agent (pid {os.getppid()}); exec kept "
                         f"ready: {'yes' if spare is not None else 'no'}\n")
    return entry.build_in_process(list(request.argv))


def _report(fd: int) -> None:
    from kubectl_build.kube import prespawn

    target = prespawn.next_target()
    with contextlib.suppress(OSError):
        if target is not None:
            os.write(fd, json.dumps(target).encode())
        os.close(fd)


# ---------------------------------------------------------------------- start-up

LOCK_WAIT = 3.0
"""Seconds to wait for an agent that refused a request (changed code) to exit."""


def _lock(fd: int) -> bool:
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False  # another agent serves here
            time.sleep(0.1)


def main(path: str) -> int:
    """Serve on ``path`` until idle; 0 also when another agent already serves there."""
    lock = open(path + ".lock", "a")  # noqa: SIM115 - held for the agent's life
    if not _lock(lock.fileno()):
        return 0
    os.chdir("/")
    # Collections in a copy would walk (and, by touching, copy) every object imported
    # here: kept out of the collector's sight, as the gc docs advise for pre-fork servers.
    gc.disable()
    preload()
    gc.freeze()
    code = fingerprint()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    listener.listen(16)
    Path(path + ".pid").write_text(f"{os.getpid()}\n")
    agent = Agent(listener, code, wire.idle_seconds(os.environ))

    def stop(_signum: int, _frame: object) -> None:
        agent.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.serve()
    finally:
        with contextlib.suppress(FileNotFoundError):
            if Path(path + ".pid").read_text().strip() == str(os.getpid()):
                os.unlink(path)
                os.unlink(path + ".pid")
    return 0

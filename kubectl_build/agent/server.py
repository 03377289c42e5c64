"""The agent: import everything once, then fork a ready copy for each build.

The agent stays single-threaded (forking a process with threads copies locks other
threads held) and starts no grpc channel: each forked copy initialises its own. It
keeps at most one spare `kubectl exec` into the pod the last build used; the next
copy inherits it and adopts it when its build goes to the same pod with the same
environment (agent/warm_exec.py). The agent runs builds with the function it is started
with (the entry module's: it imports nothing of the CLI itself). The agent exits after
its idle time, when its code on disk changed (the copy would run old code), or on SIGTERM.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

from kubectl_build.agent import wire
from kubectl_build.agent.runner import Handoff, RunBuild, SpareExec, run_copy
from kubectl_build.errors import ExitCode

PACKAGE = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT = 5.0
"""Seconds a connected caller has to send its whole request."""
TICK = 1.0
"""Seconds between housekeeping rounds (reaping, idle check)."""


def fingerprint(root: Path = PACKAGE) -> str:
    """Digest of the package's files as on disk (names, sizes, modification times).

    In the frozen release, whose modules live inside the executable, of the executable too.
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
class Agent:
    """The serving loop: requests in, forked copies out, one spare exec kept ready."""

    listener: socket.socket
    code: str
    idle: float
    run_build: RunBuild
    spare: SpareExec | None = None
    # pid of a forked copy -> the spare handed to it (stopped once the copy is gone)
    copies: dict[int, SpareExec | None] = field(default_factory=dict)
    # report pipe (read end) -> bytes read so far
    reports: dict[int, bytes] = field(default_factory=dict)
    last: float = field(default_factory=time.monotonic)
    stopping: bool = False

    def serve(self) -> None:
        """Accept callers and reap copies until stopped (changed code, idle, a signal)."""
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
            run_copy(Handoff(request, caller, conn, fds, spare, write_end),
                     (conn.fileno(), write_end, *fds, *_spare_fds(spare)), self.run_build)
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
        from kubectl_build.agent import warm_exec

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
        started = warm_exec.spawn_exec(warm_exec.exec_command(kubectl, *key), env=env,
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


def main(path: str, run_build: RunBuild, preload: Callable[[], None]) -> int:
    """Serve on ``path`` until idle; OK also when another agent already serves there.

    Args:
        path: the socket (wire.socket_path).
        run_build: runs one build in a forked copy.
        preload: imports what a build needs, so every copy starts with it done.
    """
    lock = open(path + ".lock", "a")  # noqa: SIM115 - held for the agent's life
    if not _lock(lock.fileno()):
        return ExitCode.OK
    os.chdir("/")
    # Collections in a copy would walk (and, by touching, copy) every object imported
    # here: kept out of the collector's sight, as the gc docs advise for pre-fork servers.
    gc.disable()
    preload()
    gc.freeze()
    code = fingerprint()
    listener = _listen(path)
    Path(path + ".pid").write_text(f"{os.getpid()}\n")
    agent = Agent(listener, code, wire.idle_seconds(os.environ), run_build)

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
    return ExitCode.OK


def _listen(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    listener.listen(16)
    return listener

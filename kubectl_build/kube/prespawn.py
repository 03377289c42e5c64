"""Start dialling the remembered builder pod before the heavy imports.

Starting `kubectl exec ... buildctl dial-stdio` takes a few hundred milliseconds
(kubectl start, the exec upgrade, the process in the pod); importing grpc, h2 and
the rest of the build takes about as long. Doing both at once halves the time to
Solve on a warm builder. The early exec talks through a socketpair; when grpc
later connects to the bridge, the bridge splices that connection onto it.

Under the local agent (kubectl_build.agent), the exec for the next build is started
when the previous one ends: the agent's forked copy finds it here as a Spare and
adopts it when it is for the same pod and environment.

The builder-named registry Secret is read the same way, by `kubectl get secret`
started at once: importing the kubernetes client for it (0.3 s of CPU) in a thread
of this process would slow down everything else that runs before and during Solve,
and the daemon asks for credentials early in a pushing build.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kubectl_build.agent import wire
from kubectl_build.kube import warm

EarlyKey = tuple[str, str, str, tuple[str, ...]]
"""(namespace, pod, container, kubectl args)."""


class ChildProcess(Protocol):
    """What the transport needs of the process behind an exec."""

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        ...

    def terminate(self) -> None:
        """Ask it to end (SIGTERM)."""
        ...

    def kill(self) -> None:
        """End it (SIGKILL)."""
        ...

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end and return its exit status."""
        ...


class AgentOwned:
    """The agent's kubectl, seen from its forked copy (a sibling, not a child).

    The agent reaps it; until then it cannot exit unseen, so its pid cannot be reused
    while this still signals it.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        """0 once the process is gone or a zombie (its status is the agent's), else None."""
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
                state = stat.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return 0
        return 0 if state in ("Z", "X") else None

    def terminate(self) -> None:
        """Send SIGTERM while it runs."""
        self._signal(15)

    def kill(self) -> None:
        """Send SIGKILL while it runs."""
        self._signal(9)

    def wait(self, timeout: float | None = None) -> int:
        """Return 0 at once: the agent, its parent, waits for it."""
        return 0

    def _signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signum)


@dataclass
class Spare:
    """An exec the agent started for the next build, as its forked copy inherits it."""

    key: EarlyKey
    env: str
    """wire.env_digest of the environment it was started with."""
    pid: int
    sock: socket.socket


@dataclass
class Early:
    """An exec already running for (namespace, pod, container, kubectl args)."""

    key: EarlyKey
    process: ChildProcess
    sock: socket.socket


SecretKey = tuple[str, str, tuple[str, ...]]
"""(namespace, Secret name, kubectl args)."""


@dataclass
class EarlySecret:
    """A `kubectl get secret NAME -o json` already running."""

    key: SecretKey
    process: subprocess.Popen[bytes]


_EARLY: Early | None = None
_SECRET: EarlySecret | None = None
_SPARE: Spare | None = None
_CACHE_KEY: str | None = None
_ADOPTED = False


def exec_command(kubectl: str, namespace: str, pod: str, container: str,
                 kubectl_args: Sequence[str]) -> list[str]:
    """The `kubectl exec` that connects stdin/stdout to the pod's buildkitd."""
    return [kubectl, *kubectl_args, "-n", namespace, "exec", "-i", pod, "-c", container,
            "--", "buildctl", "dial-stdio"]


def spawn_exec(command: Sequence[str], env: dict[str, str] | None = None,
               cwd: str | None = None) -> tuple[subprocess.Popen[bytes], socket.socket] | None:
    """Start an exec talking through a socketpair; (process, our end) or None."""
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(command, stdin=theirs.fileno(), stdout=theirs.fileno(),
                                   stderr=subprocess.DEVNULL, close_fds=True, env=env, cwd=cwd)
    except OSError:
        ours.close()
        return None
    finally:
        theirs.close()
    return process, ours


def offer(spare: Spare) -> None:
    """The agent's exec for this build, adopted by ``start`` when it fits."""
    global _SPARE
    _SPARE = spare


def start(kubeconfig: str | None, context: str | None, namespace: str | None,
          builder: str, *, read_secret: bool = False) -> None:
    """Spawn the exec for the remembered pod, if there is one (best effort).

    With ``read_secret``, also start reading the Secret named like the builder.
    """
    global _EARLY, _SECRET, _SPARE, _CACHE_KEY, _ADOPTED
    _CACHE_KEY = warm.cache_key(kubeconfig, context, namespace, builder)
    entry = warm.load(_CACHE_KEY)
    spare, _SPARE = _SPARE, None
    kubectl = shutil.which("kubectl")
    if entry is None or kubectl is None:
        if spare is not None:
            spare.sock.close()
        return
    key = (entry.namespace, entry.pod, entry.container, entry.kubectl_args)
    if spare is not None and spare.key == key and spare.env == wire.env_digest(os.environ):
        _EARLY = Early(key, AgentOwned(spare.pid), spare.sock)
        _ADOPTED = True
    else:
        if spare is not None:
            spare.sock.close()
        started = spawn_exec(exec_command(kubectl, *key))
        if started is None:
            return
        _EARLY = Early(key, *started)
    if read_secret:  # after the exec, which Solve waits for
        _SECRET = _read_secret(kubectl, entry, builder)


def adopted_spare() -> bool:
    """Whether this build's exec is the one the agent started for it."""
    return _ADOPTED


def next_target() -> dict[str, object] | None:
    """For the agent: the pod to dial for the next build.

    That is the pod this build's target is remembered by now; None when this was no
    warm-path cluster build.
    """
    entry = warm.load(_CACHE_KEY) if _CACHE_KEY is not None else None
    if entry is None:
        return None
    return {"key": [entry.namespace, entry.pod, entry.container, list(entry.kubectl_args)],
            "env": dict(os.environ), "cwd": os.getcwd()}


def _read_secret(kubectl: str, entry: warm.WarmEntry, name: str) -> EarlySecret | None:
    try:
        reader = subprocess.Popen(
            [kubectl, *entry.kubectl_args, "-n", entry.namespace, "get", "secret", name,
             "-o", "json"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, close_fds=True, preexec_fn=_lower_priority)
    except OSError:
        return None
    return EarlySecret((entry.namespace, name, entry.kubectl_args), reader)


def settle(key: EarlyKey, timeout: float) -> bool | None:
    """Did the early exec for this target reach buildkitd?

    True once the daemon has spoken (its HTTP/2 server sends SETTINGS as soon as
    `dial-stdio` connects: the bytes are peeked, not taken); False when kubectl
    exited first (the remembered pod is gone, or exec is refused); None when there
    is no early exec for this target or `timeout` passed undecided. A stale
    remembered pod then costs the second kubectl needs to fail, not the dial timeout
    grpc would spend reconnecting to it.
    """
    early = _EARLY
    if early is None or early.key != key:
        return None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(early.sock, selectors.EVENT_READ)
        while True:
            if sel.select(min(0.05, max(0.0, deadline - time.monotonic()))):
                try:
                    return bool(early.sock.recv(1, socket.MSG_PEEK))  # b"": kubectl exited
                except OSError:
                    return False
            if early.process.poll() is not None:
                return False
            if time.monotonic() >= deadline:
                return None


def take(key: EarlyKey) -> Early | None:
    """The early exec for this target, once; None if absent, different or dead."""
    global _EARLY
    early, _EARLY = _EARLY, None
    if early is None:
        return None
    if early.key != key or early.process.poll() is not None:
        discard(early)
        return None
    return early


def discard(early: Early) -> None:
    """Stop an early exec nobody used."""
    early.sock.close()
    if early.process.poll() is None:
        early.process.terminate()


def _lower_priority() -> None:
    # The Secret is needed only once the daemon asks for credentials, after Solve; the
    # exec and this process's imports come first (2-core machines feel the difference).
    if hasattr(os, "nice"):
        os.nice(10)


def take_secret(key: SecretKey) -> EarlySecret | None:
    """Take the early Secret read for (namespace, name, kubectl args), once.

    Returns None if there is none or it was for another target.
    """
    global _SECRET
    early, _SECRET = _SECRET, None
    if early is not None and early.key != key:
        _stop(early.process)
        return None
    return early


def abandon() -> None:
    """Stop what the build never took.

    That is the early exec (another pod, or no warm dial) and the early Secret read.
    """
    global _EARLY, _SECRET
    early, _EARLY = _EARLY, None
    if early is not None:
        discard(early)
    secret, _SECRET = _SECRET, None
    if secret is not None:
        _stop(secret.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()

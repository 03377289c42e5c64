"""Start dialling the remembered builder pod before the heavy imports.

Starting `kubectl exec ... buildctl dial-stdio` takes a few hundred milliseconds
(kubectl start, the exec upgrade, the process in the pod); importing grpc, h2 and
the rest of the build takes about as long. Doing both at once halves the time to
Solve on a warm builder. The early exec talks through a socketpair; when grpc
later connects to the bridge (kube/transport.py), the bridge splices that connection
onto it.

Under the local agent, the exec for the next build is started when the previous one
ends: the agent's forked copy hands it to its WarmStart as a Spare, which adopts it
when it is for the same pod and environment.

The builder-named registry Secret is read the same way, by `kubectl get secret`
started at once: importing the kubernetes client for it (0.3 s of CPU) in a thread
of this process would slow down everything else that runs before and during Solve,
and the daemon asks for credentials early in a pushing build.

All of it is one invocation's state, held by the WarmStart its entry made and passed
down: nothing lives in this module between two builds of one agent copy's life.
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

from kubectl_build.agent import wire
from kubectl_build.host import facts
from kubectl_build.kube import warm
from kubectl_build.kube.pod_exec import ChildProcess, PodTarget

EarlyKey = tuple[str, str, str, tuple[str, ...]]
"""(namespace, pod, container, kubectl args)."""
SecretKey = tuple[str, str, tuple[str, ...]]
"""(namespace, Secret name, kubectl args)."""


class AgentOwned:
    """The agent's kubectl, seen from its forked copy (a sibling, not a child).

    The agent reaps it; until then it cannot exit unseen, so its pid cannot be reused
    while this still signals it.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        """0 once the process is gone, None while it runs."""
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
                state = stat.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return 0
        return 0 if state in ("Z", "X") else None

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM)."""
        self._signal(15)

    def kill(self) -> None:
        """Stop it (SIGKILL)."""
        self._signal(9)

    def wait(self, timeout: float | None = None) -> int:
        """Nothing to wait for here: the agent, its parent, reaps it."""
        return 0  # the agent waits for it

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


@dataclass
class EarlySecret:
    """A `kubectl get secret NAME -o json` already running."""

    key: SecretKey
    process: subprocess.Popen[bytes]


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


@dataclass
class WarmStart:
    """One invocation's warm path: the early exec, the early Secret read, the agent's spare.

    Made once per CLI invocation (by the entry, or by the agent's copy with the spare it
    inherited); implements kube.pod_exec.EarlyExecs, so the transport takes the early
    exec from it without knowing the agent.
    """

    spare: Spare | None = None
    """The agent's exec for this build, adopted by ``start`` when it fits."""
    early: Early | None = None
    secret: EarlySecret | None = None
    cache_key: str | None = None
    adopted: bool = False
    """Whether this build's exec is the one the agent started for it."""

    def start(self, kubeconfig: str | None, context: str | None, namespace: str | None,
              builder: str, *, read_secret: bool = False) -> None:
        """Spawn the exec for the remembered pod, if there is one (best effort).

        With ``read_secret``, also the read of the Secret named like the builder.
        """
        self.cache_key = warm.cache_key(kubeconfig, context, namespace, builder)
        entry = warm.load(self.cache_key)
        spare, self.spare = self.spare, None
        kubectl = shutil.which("kubectl")
        if entry is None or kubectl is None:
            if spare is not None:
                spare.sock.close()
            return
        key = (entry.namespace, entry.pod, entry.container, entry.kubectl_args)
        if spare is not None and spare.key == key and spare.env == wire.env_digest(os.environ):
            self.early = Early(key, AgentOwned(spare.pid), spare.sock)
            self.adopted = True
        else:
            if spare is not None:
                spare.sock.close()
            if not facts.sockets_as_stdio():
                return  # a socketpair cannot be its stdio (Windows): it starts on dial
            started = spawn_exec(exec_command(kubectl, *key))
            if started is None:
                return
            self.early = Early(key, *started)
        if read_secret:  # after the exec, which Solve waits for
            self.secret = _read_secret(kubectl, entry, builder)

    def next_target(self) -> dict[str, object] | None:
        """For the agent: the pod to dial for the next build, as this build remembered it.

        None when this was no warm-path cluster build.
        """
        entry = warm.load(self.cache_key) if self.cache_key is not None else None
        if entry is None:
            return None
        return {"key": [entry.namespace, entry.pod, entry.container, list(entry.kubectl_args)],
                "env": dict(os.environ), "cwd": os.getcwd()}

    def settle(self, target: PodTarget, kubectl_args: Sequence[str],
               timeout: float) -> bool | None:
        """Did the early exec for this target reach buildkitd?

        True once the daemon has spoken (its HTTP/2 server sends SETTINGS as soon as
        `dial-stdio` connects: the bytes are peeked, not taken); False when kubectl
        exited first (the remembered pod is gone, or exec is refused); None when there
        is no early exec for this target or `timeout` passed undecided. A stale
        remembered pod then costs the second kubectl needs to fail, not the dial timeout
        grpc would spend reconnecting to it.
        """
        early = self.early
        if early is None or early.key != _key(target, kubectl_args):
            return None
        return _settle(early, timeout)

    def take(self, target: PodTarget,
             kubectl_args: Sequence[str]) -> tuple[ChildProcess, socket.socket] | None:
        """The early exec for this target, once; None if absent, different or dead."""
        early, self.early = self.early, None
        if early is None:
            return None
        if early.key != _key(target, kubectl_args) or early.process.poll() is not None:
            discard(early)
            return None
        return early.process, early.sock

    def take_secret(self, key: SecretKey) -> EarlySecret | None:
        """The early Secret read for (namespace, name, kubectl args), once.

        None if there is none, or it is for another target.
        """
        early, self.secret = self.secret, None
        if early is not None and early.key != key:
            _stop(early.process)
            return None
        return early

    def abandon(self) -> None:
        """Stop what the build never took.

        The early exec (another pod, or no warm dial) and the early Secret read.
        """
        early, self.early = self.early, None
        if early is not None:
            discard(early)
        secret, self.secret = self.secret, None
        if secret is not None:
            _stop(secret.process)


def _key(target: PodTarget, kubectl_args: Sequence[str]) -> EarlyKey:
    return target.namespace, target.pod, target.container, tuple(kubectl_args)


def _settle(early: Early, timeout: float) -> bool | None:
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


def discard(early: Early) -> None:
    """Stop an early exec nobody used."""
    early.sock.close()
    if early.process.poll() is None:
        early.process.terminate()


def _read_secret(kubectl: str, entry: warm.WarmEntry, name: str) -> EarlySecret | None:
    try:
        reader = subprocess.Popen(
            [kubectl, *entry.kubectl_args, "-n", entry.namespace, "get", "secret", name,
             "-o", "json"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, close_fds=True,
            preexec_fn=_lower_priority if facts.lower_priority_supported() else None)
    except OSError:
        return None
    return EarlySecret((entry.namespace, name, entry.kubectl_args), reader)


def _lower_priority() -> None:
    # The Secret is needed only once the daemon asks for credentials, after Solve; the
    # exec and this process's imports come first (2-core machines feel the difference).
    os.nice(10)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()

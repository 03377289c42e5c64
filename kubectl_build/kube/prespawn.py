"""Start dialling the remembered builder pod before the heavy imports.

Starting `kubectl exec ... buildctl dial-stdio` takes a few hundred milliseconds
(kubectl start, the exec upgrade, the process in the pod); importing grpc, h2 and
the rest of the build takes about as long. Doing both at once halves the time to
Solve on a warm builder. The early exec talks through a socketpair; when grpc
later connects to the bridge, the bridge splices that connection onto it.

The builder-named registry Secret is read the same way, by `kubectl get secret`
started at once: importing the kubernetes client for it (0.3 s of CPU) in a thread
of this process would slow down everything else that runs before and during Solve,
and the daemon asks for credentials early in a pushing build.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

from kubectl_build.kube import warm


@dataclass
class Early:
    """An exec already running for (namespace, pod, container, kubectl args)."""

    key: tuple[str, str, str, tuple[str, ...]]
    process: subprocess.Popen[bytes]
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


def start(kubeconfig: str | None, context: str | None, namespace: str | None,
          builder: str, *, read_secret: bool = False) -> None:
    """Spawn the exec for the remembered pod, if there is one (best effort); with
    ``read_secret``, also the read of the Secret named like the builder."""
    global _EARLY, _SECRET
    entry = warm.load(warm.cache_key(kubeconfig, context, namespace, builder))
    kubectl = shutil.which("kubectl")
    if entry is None or kubectl is None:
        return
    ours, theirs = socket.socketpair()
    command = [kubectl, *entry.kubectl_args, "-n", entry.namespace, "exec", "-i", entry.pod,
               "-c", entry.container, "--", "buildctl", "dial-stdio"]
    try:
        process = subprocess.Popen(command, stdin=theirs.fileno(), stdout=theirs.fileno(),
                                   stderr=subprocess.DEVNULL, close_fds=True)
    except OSError:
        ours.close()
        return
    finally:
        theirs.close()
    _EARLY = Early((entry.namespace, entry.pod, entry.container, entry.kubectl_args),
                   process, ours)
    if read_secret:  # after the exec, which Solve waits for
        _SECRET = _read_secret(kubectl, entry, builder)


def _read_secret(kubectl: str, entry: warm.WarmEntry, name: str) -> EarlySecret | None:
    try:
        reader = subprocess.Popen(
            [kubectl, *entry.kubectl_args, "-n", entry.namespace, "get", "secret", name,
             "-o", "json"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, close_fds=True, preexec_fn=_lower_priority)
    except OSError:
        return None
    return EarlySecret((entry.namespace, name, entry.kubectl_args), reader)


def settle(key: tuple[str, str, str, tuple[str, ...]], timeout: float) -> bool | None:
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


def take(key: tuple[str, str, str, tuple[str, ...]]) -> Early | None:
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
    """The early Secret read for (namespace, name, kubectl args), once; None if absent
    or for another target."""
    global _SECRET
    early, _SECRET = _SECRET, None
    if early is not None and early.key != key:
        _stop(early.process)
        return None
    return early


def abandon() -> None:
    """Stop what the build never took: the early exec (another pod, or no warm dial) and
    the early Secret read."""
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

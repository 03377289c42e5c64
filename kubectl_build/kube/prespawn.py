"""Start dialling the remembered builder pod before the heavy imports.

Starting `kubectl exec ... buildctl dial-stdio` takes a few hundred milliseconds
(kubectl start, the exec upgrade, the process in the pod); importing grpc, h2 and
the rest of the build takes about as long. Doing both at once halves the time to
Solve on a warm builder. The early exec talks through a socketpair; when grpc
later connects to the bridge, the bridge splices that connection onto it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass

from kubectl_build.kube import warm


@dataclass
class Early:
    """An exec already running for (namespace, pod, container, kubectl args)."""

    key: tuple[str, str, str, tuple[str, ...]]
    process: subprocess.Popen[bytes]
    sock: socket.socket


_EARLY: Early | None = None


def start(kubeconfig: str | None, context: str | None, namespace: str | None,
          builder: str) -> None:
    """Spawn the exec for the remembered pod, if there is one (best effort)."""
    global _EARLY
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

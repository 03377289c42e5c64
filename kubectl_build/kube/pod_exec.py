"""An exec into a builder pod, as the transport and the warm path that starts one early share it.

Light on purpose (no grpc, no kubernetes client): the warm path (agent/warm_exec.py)
runs before the heavy imports, and the transport (transport.py) imports these types.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import subprocess


@dataclass(frozen=True)
class PodTarget:
    """Which container of which pod runs buildkitd."""

    namespace: str
    pod: str
    container: str


class ChildProcess(Protocol):
    """What the transport needs of the process behind an exec."""

    def poll(self) -> int | None:
        """Its exit status once it ended, else None."""
        ...

    def terminate(self) -> None:
        """Ask it to stop."""
        ...

    def kill(self) -> None:
        """Stop it."""
        ...

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end; its exit status."""
        ...


class EarlyExecs(Protocol):
    """Execs into builder pods started before the transport was asked for one.

    The local agent's warm path (agent/warm_exec.py WarmStart) implements it; the
    transport only takes what it is handed, so it needs to know nothing of the agent.
    """

    def settle(self, target: PodTarget, kubectl_args: Sequence[str],
               timeout: float) -> bool | None:
        """Whether the early exec for the target reached buildkitd.

        True once it did, False when it died first, None when there is none for the target
        or ``timeout`` passed undecided.
        """
        ...

    def take(self, target: PodTarget,
             kubectl_args: Sequence[str]) -> tuple[ChildProcess, socket.socket] | None:
        """The live early exec for the target (its process and our socket end), once."""
        ...


SecretKey = tuple[str, str, tuple[str, ...]]
"""(namespace, Secret name, kubectl args)."""


class EarlySecret(Protocol):
    """A `kubectl get secret NAME -o json` already running (agent/warm_exec.py starts it)."""

    @property
    def key(self) -> SecretKey:
        """What it reads: namespace, Secret name, kubectl args."""
        ...

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running kubectl."""
        ...


class WarmPath(EarlyExecs, Protocol):
    """What a cluster build asks of the invocation's warm-path state (a WarmStart)."""

    @property
    def adopted(self) -> bool:
        """Whether this build's exec is the one the local agent kept ready for it."""
        ...

    def take_secret(self, key: SecretKey) -> EarlySecret | None:
        """The early read of the Secret ``key``, once; None when there is none."""
        ...

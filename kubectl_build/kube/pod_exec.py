"""An exec into a builder pod, as the transport and the warm path that starts one early share it.

Light on purpose (no grpc, no kubernetes client): the warm path (agent/warm_exec.py)
runs before the heavy imports, and the transport (transport.py) imports these types.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PodTarget:
    """Which container of which pod runs buildkitd."""

    namespace: str
    pod: str
    container: str


class ChildProcess(Protocol):
    """What the transport needs of the process behind an exec."""

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class EarlyExecs(Protocol):
    """Execs into builder pods started before the transport was asked for one.

    The local agent's warm path (agent/warm_exec.py WarmStart) implements it; the
    transport only takes what it is handed, so it needs to know nothing of the agent.
    """

    def settle(self, target: PodTarget, kubectl_args: Sequence[str],
               timeout: float) -> bool | None:
        """True once the early exec for the target reached buildkitd, False when it died
        first, None when there is none for the target or ``timeout`` passed undecided."""
        ...

    def take(self, target: PodTarget,
             kubectl_args: Sequence[str]) -> tuple[ChildProcess, socket.socket] | None:
        """The live early exec for the target (its process and our socket end), once."""
        ...

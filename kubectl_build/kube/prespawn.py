"""Transitional: the warm-path calls run/cluster.py still makes as module functions.

The early exec, the early Secret read and the agent's spare are one invocation's state
now, a WarmStart (agent/warm_exec.py) that the entry makes and passes down. run/ (being
rewritten) does not take it from its caller yet, so the build command installs it here
for the build's duration and these functions reach it.

TODO(run/ rewrite): run/cluster.py takes the WarmStart from run_build's caller and uses
``warm.adopted``, ``warm.take_secret(key)`` and ``open_client(..., early=warm)``; then
this module, its ``installed`` in cli/commands.py and open_client's fallback go.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from kubectl_build.kube.pod_exec import EarlyExecs

SecretKey = tuple[str, str, tuple[str, ...]]
"""(namespace, Secret name, kubectl args)."""


class EarlySecret(Protocol):
    """A `kubectl get secret NAME -o json` already running (agent/warm_exec.py)."""

    @property
    def key(self) -> SecretKey: ...

    @property
    def process(self) -> subprocess.Popen[bytes]: ...


class WarmPath(EarlyExecs, Protocol):
    """What run/cluster.py and the transport's fallback ask of the invocation's WarmStart."""

    @property
    def adopted(self) -> bool: ...

    def take_secret(self, key: SecretKey) -> EarlySecret | None: ...


_CURRENT: list[WarmPath] = []


@contextmanager
def installed(warm: WarmPath) -> Iterator[None]:
    """Make ``warm`` the one these functions reach while the build runs."""
    _CURRENT.append(warm)
    try:
        yield
    finally:
        _CURRENT.remove(warm)


def current() -> WarmPath | None:
    """The installed WarmStart, if a build command installed one."""
    return _CURRENT[-1] if _CURRENT else None


def adopted_spare() -> bool:
    """Whether this build's exec is the one the agent started for it."""
    warm = current()
    return warm is not None and warm.adopted


def take_secret(key: SecretKey) -> EarlySecret | None:
    """The early Secret read for (namespace, name, kubectl args), once."""
    warm = current()
    return None if warm is None else warm.take_secret(key)

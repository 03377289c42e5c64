"""prespawn.settle: telling a live early exec from one whose pod is gone."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from kubectl_build.kube import prespawn

KEY = ("ns", "pod", "buildkitd", ())


@pytest.fixture
def early_exec() -> Iterator[list[prespawn.Early]]:
    made: list[prespawn.Early] = []
    yield made
    prespawn._EARLY = None
    for early in made:
        prespawn.discard(early)
        early.process.wait(timeout=10)


def start(made: list[prespawn.Early], code: str) -> prespawn.Early:
    """An 'exec' (a Python child) on a socketpair, like prespawn.start makes."""
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=theirs.fileno(),
                            stdout=theirs.fileno())
    theirs.close()
    early = prespawn.Early(KEY, proc, ours)
    made.append(early)
    prespawn._EARLY = early
    return early


def test_a_daemon_that_speaks_is_alive_and_its_bytes_stay(early_exec: list[prespawn.Early]) -> None:
    early = start(early_exec, "import os, time; os.write(1, b'SETTINGS'); time.sleep(30)")
    assert prespawn.settle(KEY, 10) is True
    assert early.sock.recv(8) == b"SETTINGS"  # peeked, not taken: grpc still gets them


def test_an_exec_that_exits_is_dead(early_exec: list[prespawn.Early]) -> None:
    start(early_exec, "import sys; sys.exit(1)")  # kubectl: pods "x" not found
    assert prespawn.settle(KEY, 10) is False


def test_undecided_or_absent_is_none(early_exec: list[prespawn.Early]) -> None:
    assert prespawn.settle(KEY, 0.1) is None  # nothing started
    start(early_exec, "import time; time.sleep(30)")
    assert prespawn.settle(("ns", "other", "buildkitd", ()), 0.1) is None
    assert prespawn.settle(KEY, 0.2) is None


def test_the_early_secret_read_goes_to_its_target_once() -> None:
    def reader() -> prespawn.EarlySecret:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        return prespawn.EarlySecret(("ns", "buildkit", ()), proc)

    prespawn._SECRET = early = reader()
    assert prespawn.take_secret(("ns", "buildkit", ())) is early
    assert prespawn.take_secret(("ns", "buildkit", ())) is None  # once
    early.process.terminate()
    early.process.wait(timeout=10)
    prespawn._SECRET = other = reader()
    assert prespawn.take_secret(("other-ns", "buildkit", ())) is None  # not for this target
    assert other.process.wait(timeout=10) != 0  # and stopped
    prespawn._SECRET = unused = reader()
    prespawn.abandon()  # the build never asked: stopped at the end
    assert prespawn._SECRET is None and unused.process.wait(timeout=10) != 0

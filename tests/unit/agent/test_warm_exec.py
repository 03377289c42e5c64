"""WarmStart.settle: telling a live early exec from one whose pod is gone; the early
Secret read goes to its target once."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from kubectl_build.agent.warm_exec import Early, EarlySecret, WarmStart, discard
from kubectl_build.kube.pod_exec import PodTarget

KEY = ("ns", "pod", "buildkitd", ())
TARGET = PodTarget("ns", "pod", "buildkitd")


@pytest.fixture
def early_exec() -> Iterator[tuple[WarmStart, list[Early]]]:
    made: list[Early] = []
    warm = WarmStart()
    yield warm, made
    warm.early = None
    for early in made:
        discard(early)
        early.process.wait(timeout=10)


def start(given: tuple[WarmStart, list[Early]], code: str) -> Early:
    """An 'exec' (a Python child) on a socketpair, like WarmStart.start makes."""
    warm, made = given
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=theirs.fileno(),
                            stdout=theirs.fileno())
    theirs.close()
    early = Early(KEY, proc, ours)
    made.append(early)
    warm.early = early
    return early


def test_a_daemon_that_speaks_is_alive_and_its_bytes_stay(
        early_exec: tuple[WarmStart, list[Early]]) -> None:
    early = start(early_exec, "import os, time; os.write(1, b'SETTINGS'); time.sleep(30)")
    assert early_exec[0].settle(TARGET, (), 10) is True
    assert early.sock.recv(8) == b"SETTINGS"  # peeked, not taken: grpc still gets them


def test_an_exec_that_exits_is_dead(early_exec: tuple[WarmStart, list[Early]]) -> None:
    start(early_exec, "import sys; sys.exit(1)")  # kubectl: pods "x" not found
    assert early_exec[0].settle(TARGET, (), 10) is False


def test_undecided_or_absent_is_none(early_exec: tuple[WarmStart, list[Early]]) -> None:
    warm = early_exec[0]
    assert warm.settle(TARGET, (), 0.1) is None  # nothing started
    start(early_exec, "import time; time.sleep(30)")
    assert warm.settle(PodTarget("ns", "other", "buildkitd"), (), 0.1) is None
    assert warm.settle(TARGET, (), 0.2) is None


def test_the_early_exec_is_taken_once_and_only_for_its_target(
        early_exec: tuple[WarmStart, list[Early]]) -> None:
    warm = early_exec[0]
    early = start(early_exec, "import time; time.sleep(30)")
    assert warm.take(TARGET, ()) == (early.process, early.sock)
    assert warm.take(TARGET, ()) is None  # once
    other = start(early_exec, "import time; time.sleep(30)")
    assert warm.take(PodTarget("ns", "other", "buildkitd"), ()) is None
    assert other.process.wait(timeout=10) != 0  # not for this target: stopped


def test_the_early_secret_read_goes_to_its_target_once() -> None:
    def reader() -> EarlySecret:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        return EarlySecret(("ns", "buildkit", ()), proc)

    warm = WarmStart()
    warm.secret = early = reader()
    assert warm.take_secret(("ns", "buildkit", ())) is early
    assert warm.take_secret(("ns", "buildkit", ())) is None  # once
    early.process.terminate()
    early.process.wait(timeout=10)
    warm.secret = other = reader()
    assert warm.take_secret(("other-ns", "buildkit", ())) is None  # not for this target
    assert other.process.wait(timeout=10) != 0  # and stopped
    warm.secret = unused = reader()
    warm.abandon()  # the build never asked: stopped at the end
    assert warm.secret is None and unused.process.wait(timeout=10) != 0


def test_two_invocations_share_nothing() -> None:
    first, second = WarmStart(), WarmStart()
    first.adopted = True
    assert not second.adopted and second.early is None and second.secret is None

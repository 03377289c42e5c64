"""PodWatch: the sleep between builder checks that ends when a pod changes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kubectl_build.kube.waiting import PodWatch


class FakeWatch(PodWatch):
    """PodWatch whose watch stream is scripted (events, or an exception to raise)."""

    def __init__(self, script: list[Mapping[str, Any]] | Exception) -> None:
        self.slept: list[float] = []
        super().__init__(kube=None, selector="kubectl-build.dev/builder=b",  # type: ignore[arg-type]
                         sleep=self.slept.append)
        self.script = script
        self.asked: list[tuple[str, float]] = []
        self.closed = False

    def events(self, version: str, seconds: float) -> Iterator[Mapping[str, Any]]:
        self.asked.append((version, seconds))
        if isinstance(self.script, Exception):
            raise self.script
        return self._gen(self.script)

    def _gen(self, events: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        try:
            yield from events
        finally:
            self.closed = True


def test_a_pod_change_ends_the_sleep_at_once() -> None:
    w = FakeWatch([{"type": "MODIFIED", "object": {}}, {"type": "MODIFIED", "object": {}}])
    w.version = "42"
    w.sleep(1.0)
    assert w.asked == [("42", 1.0)] and w.slept == [] and w.closed
    assert w.version is None  # used once: the next check's list sets it again


def test_no_version_or_no_watch_sleeps_the_whole_time() -> None:
    w = FakeWatch([{"type": "MODIFIED"}])
    w.sleep(0.5)  # no list seen yet: a watch from "now" would replay every pod
    assert w.asked == [] and w.slept == [0.5]
    refused = FakeWatch(RuntimeError("403 forbidden: watch"))
    refused.version = "7"
    refused.sleep(0.5)
    assert refused.asked == [("7", 0.5)] and len(refused.slept) == 1
    assert 0.4 < refused.slept[0] <= 0.5


def test_an_expired_version_or_a_quiet_watch_is_no_change() -> None:
    gone = FakeWatch([{"type": "ERROR", "object": {"code": 410}}])
    gone.version = "1"
    gone.sleep(0.2)
    assert len(gone.slept) == 1 and gone.closed
    quiet = FakeWatch([])
    quiet.version = "1"
    quiet.sleep(0.2)
    assert len(quiet.slept) == 1

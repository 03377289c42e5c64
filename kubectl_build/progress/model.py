"""Fold BuildKit's status stream into the state every progress display draws from.

BuildKit's ``Control.Status`` stream sends partial, repeated snapshots: a vertex arrives
once when it starts and again when it completes, logs arrive as arbitrary byte chunks,
transfers re-send their counters. :class:`ProgressModel` merges them into ordered
:class:`Step` objects and reports what changed as :data:`Event` values, so a line-based
renderer can print deltas and a live renderer can redraw from the state.

Pure: no I/O and no clock; every time here is a server timestamp in epoch seconds.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kubectl_build.progress.logtail import DEFAULT_LOG_LINES, LogTail, clean_text
from kubectl_build.progress.state import (
    BuildWarning,
    Event,
    Failure,
    LogAdded,
    LogLine,
    Step,
    StepChanged,
    StepState,
    Transfer,
    TransferChanged,
    WarningAdded,
    is_canceled,
)

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

    from kubectl_build._proto.control_pb2 import (
        StatusResponse,
        Vertex,
        VertexLog,
        VertexStatus,
        VertexWarning,
    )

__all__ = [
    "BuildWarning",
    "Event",
    "Failure",
    "LogAdded",
    "LogLine",
    "ProgressModel",
    "Step",
    "StepChanged",
    "StepState",
    "Transfer",
    "TransferChanged",
    "WarningAdded",
    "is_canceled",
    "latest_timestamp",
    "parse_exit_code",
    "timestamp_seconds",
]

_EXIT_CODE_RE = re.compile(r"exit code: (\d+)")


def timestamp_seconds(ts: Timestamp) -> float:
    """Convert a protobuf Timestamp to epoch seconds."""
    return ts.seconds + ts.nanos / 1e9


def latest_timestamp(resp: StatusResponse) -> float | None:
    """The newest daemon timestamp in a message, if it carries any."""
    stamps = [v.completed for v in resp.vertexes if v.HasField("completed")]
    stamps += [v.started for v in resp.vertexes if v.HasField("started")]
    stamps += [s.timestamp for s in resp.statuses if s.HasField("timestamp")]
    stamps += [log.timestamp for log in resp.logs if log.HasField("timestamp")]
    return max((timestamp_seconds(t) for t in stamps), default=None)


def parse_exit_code(error: str) -> int | None:
    """The exit code from BuildKit's error text, if the failure was a process exit.

    Example: ``process "/bin/sh -c exit 3" did not complete successfully: exit code: 3``.
    """
    matches = _EXIT_CODE_RE.findall(error)
    return int(matches[-1]) if matches else None


class ProgressModel:
    """The build's progress state, folded from a stream of ``StatusResponse`` messages.

    Args:
        log_lines: How many output lines to keep per step.
    """

    def __init__(self, *, log_lines: int = DEFAULT_LOG_LINES) -> None:
        self._log_lines = log_lines
        self._steps: dict[str, Step] = {}
        self._warnings: list[BuildWarning] = []
        self._numbered = 0
        self._latest: float | None = None

    @property
    def steps(self) -> list[Step]:
        """All steps in ``#N`` order, then the ones not started yet in order of mention."""
        return sorted(self._steps.values(), key=lambda s: (s.number == 0, s.number))

    @property
    def warnings(self) -> list[BuildWarning]:
        """All warnings, in arrival order."""
        return list(self._warnings)

    def step(self, digest: str, *, prefix: str | None = None) -> Step | None:
        """The step for a vertex digest, if BuildKit mentioned it."""
        return self._steps.get(_key(digest, prefix))

    def apply(self, resp: StatusResponse, *, prefix: str | None = None) -> list[Event]:
        """Merge one message into the state and return what changed, in print order.

        Completions come last so a step's final log lines precede its DONE line even when
        BuildKit sends both in one message.

        Args:
            resp: The next message of the ``Control.Status`` stream.
            prefix: Label of the stream (e.g. a platform) when several streams are merged
                into one display; it namespaces digests and prefixes step names.
        """
        latest = latest_timestamp(resp)
        if latest is not None and (self._latest is None or latest > self._latest):
            self._latest = latest
        merged = [self._merge_vertex(v, prefix) for v in resp.vertexes]
        changed = [step for step, before in merged if _snapshot(step) != before]
        # Step changes keep the message's order, except that a step which also has output
        # in this message closes after that output.
        vertices = [x.vertex for x in resp.statuses] + [x.vertex for x in resp.logs]
        busy = {_key(v, prefix) for v in vertices + [x.vertex for x in resp.warnings]}
        late = [s for s in changed if s.finished and s.key in busy]
        events: list[Event] = []
        for step in changed:
            if step not in late:
                events += self._step_events(step)
        events += [e for st in resp.statuses if (e := self._merge_status(st, prefix))]
        for log in resp.logs:
            events += self._merge_log(log, prefix)
        events += [self._merge_warning(w, prefix) for w in resp.warnings]
        for step in late:
            events += self._step_events(step)
        return events

    def failure(self) -> Failure | None:
        """The step that failed the build, or None if no step failed.

        Sibling steps fail with "context canceled" once one step fails; the first step
        with a real error is the one to report.
        """
        failed = [s for s in self._steps.values() if s.state is StepState.ERROR]
        if not failed:
            failed = [s for s in self._steps.values() if s.state is StepState.CANCELED]
        if not failed:
            return None
        step = failed[0]
        return Failure(
            number=step.number,
            name=step.name,
            error=step.error,
            logs=tuple(step.logs.tail(self._log_lines)),
            exit_code=parse_exit_code(step.error),
        )

    def time_span(self) -> tuple[float, float] | None:
        """Earliest step start and newest daemon timestamp seen, for a total timer."""
        starts = [s.started for s in self._steps.values() if s.started is not None]
        if not starts or self._latest is None:
            return None
        return min(starts), max(self._latest, min(starts))

    def _get(self, digest: str, prefix: str | None) -> Step:
        key = _key(digest, prefix)
        step = self._steps.get(key)
        if step is None:
            step = Step(key=key, logs=LogTail(self._log_lines))
            self._steps[key] = step
        return step

    def _number(self, step: Step) -> None:
        # BuildKit announces the whole graph up front, often in reverse order; numbering
        # on first sign of life gives #1, #2... in the order the user sees things happen.
        if step.number == 0:
            self._numbered += 1
            step.number = self._numbered

    def _merge_vertex(self, vertex: Vertex, prefix: str | None) -> tuple[Step, _Snapshot]:
        step = self._get(vertex.digest, prefix)
        before = _snapshot(step)
        if vertex.name:
            step.name = _prefixed(vertex.name, prefix)
        step.cached = step.cached or vertex.cached
        if vertex.HasField("started"):
            started = timestamp_seconds(vertex.started)
            if step.completed is not None and started > step.completed:
                # A vertex BuildKit runs again (retried or shared between requests) starts
                # over: show it as running until it reports completion anew.
                step.completed = None
            step.started = started
        if vertex.HasField("completed"):
            step.completed = timestamp_seconds(vertex.completed)
        if vertex.error:
            step.error = vertex.error
        if vertex.HasField("progress_group"):
            step.group = vertex.progress_group.name
        if step.started is not None or step.finished:
            self._number(step)
        return step, before

    def _merge_status(self, status: VertexStatus, prefix: str | None) -> Event | None:
        step = self._get(status.vertex, prefix)
        self._number(step)
        transfer = step.transfers.setdefault(status.id, Transfer(id=status.id))
        if transfer.done and not status.HasField("completed"):
            return None
        transfer.name = status.name or transfer.name or status.id
        transfer.current = status.current
        transfer.total = status.total
        if status.HasField("timestamp"):
            transfer.timestamp = timestamp_seconds(status.timestamp)
        if status.HasField("started"):
            transfer.started = timestamp_seconds(status.started)
        if status.HasField("completed"):
            transfer.completed = timestamp_seconds(status.completed)
        return TransferChanged(step, transfer)

    def _merge_log(self, log: VertexLog, prefix: str | None) -> list[Event]:
        step = self._get(log.vertex, prefix)
        self._number(step)
        when = timestamp_seconds(log.timestamp) if log.HasField("timestamp") else None
        stream = int(log.stream)
        had_partial = bool(step.logs.partial)
        lines = step.logs.feed(log.msg)
        if step.logs.partial and (lines or not had_partial):
            step.partial_since = when
        return [LogAdded(step, LogLine(when, text, stream)) for text in lines]

    def _merge_warning(self, warning: VertexWarning, prefix: str | None) -> Event:
        step = self._get(warning.vertex, prefix)
        self._number(step)
        item = BuildWarning(
            vertex=step.key,
            level=int(warning.level),
            short=clean_text(warning.short),
            detail=tuple(clean_text(d) for d in warning.detail),
            url=warning.url,
            filename=warning.info.filename if warning.HasField("info") else "",
            line=warning.ranges[0].start.line if warning.ranges else None,
        )
        step.warnings.append(item)
        self._warnings.append(item)
        return WarningAdded(step, item)

    def _step_events(self, step: Step) -> list[Event]:
        if not step.finished:
            return [StepChanged(step)]
        return [*self._flush_logs(step), StepChanged(step)]

    @staticmethod
    def _flush_logs(step: Step) -> list[Event]:
        text = step.logs.flush()
        if text is None:
            return []
        when = step.partial_since if step.partial_since is not None else step.completed
        return [LogAdded(step, LogLine(when, text, 1))]


_Snapshot = tuple[str, bool, float | None, float | None, str]


def _snapshot(step: Step) -> _Snapshot:
    """The fields whose change is worth an event (repeated vertices are common)."""
    return (step.name, step.cached, step.started, step.completed, step.error)


def _key(digest: str, prefix: str | None) -> str:
    return f"{prefix}|{digest}" if prefix else digest


def _prefixed(name: str, prefix: str | None) -> str:
    """Put the stream label inside the step's bracket: ``[linux/arm64 2/4] RUN make``."""
    if not prefix:
        return name
    if name.startswith("["):
        return f"[{prefix} {name[1:]}"
    return f"[{prefix}] {name}"

"""Plain-text progress for CI logs and pipes, in the style of ``buildctl --progress=plain``.

Every line starts with the step's ``#N``; a blank line separates blocks of different
steps::

    #5 [2/4] RUN make
    #5 0.512 cc -o app main.c
    #5 DONE 1.2s

No escape sequences, and every time is computed from the daemon's timestamps, so the same
status stream always prints the same text (the golden tests rely on it).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, TextIO

from kubectl_build.progress.model import (
    BuildWarning,
    Event,
    Failure,
    LogAdded,
    LogLine,
    ProgressModel,
    Step,
    StepChanged,
    StepState,
    Transfer,
    TransferChanged,
    WarningAdded,
)
from kubectl_build.progress.text import format_amount, format_duration, one_line

if TYPE_CHECKING:
    from kubectl_build._proto.control_pb2 import StatusResponse

STATUS_INTERVAL = 1.0
"""Seconds (daemon time) between two lines about the same running transfer: a layer
download updates many times a second, and CI logs should not record each."""

FAILURE_LOG_LINES = 10
"""Output lines of the failed step repeated in the final summary."""

_RULE = "------"


class PlainDisplay:
    """Writes one line per event to a text stream.

    Args:
        stream: Where to write (the console's stderr).
        prefix: Default stream label for step names, see ``select_display``.
        status_interval: Minimum daemon-time gap between lines for one running transfer.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        prefix: str | None = None,
        status_interval: float = STATUS_INTERVAL,
    ) -> None:
        self._stream = stream
        self._prefix = prefix
        self._interval = status_interval
        self._model = ProgressModel()
        self._current: Step | None = None
        self._block_lines = 0
        self._wrote = False
        self._last_status: dict[tuple[str, str], float] = {}
        self._deferred: list[Step] = []
        self._opened: set[str] = set()
        self._closed: set[str] = set()
        # The status stream is read on its own thread and may still deliver a message
        # while the build's thread finishes the display; the summary must stay last.
        self._lock = threading.Lock()
        self._finished = False

    @property
    def model(self) -> ProgressModel:
        """The progress state folded from every update so far."""
        return self._model

    def start(self) -> None:
        """Nothing to prepare: lines are written as events arrive."""

    def update(self, resp: StatusResponse, *, prefix: str | None = None) -> None:
        """Fold the message into the model and write a line per change."""
        with self._lock:
            if self._finished:
                return
            events = self._model.apply(resp, prefix=prefix or self._prefix)
            self._close_deferred()
            for event in events:
                self._render(event)
            self._stream.flush()

    def finish(self, ok: bool) -> None:
        """Write the warnings and, on failure, the failed step with its last lines."""
        with self._lock:
            if not self._finished:
                self._finished = True
                self._close_deferred()
                self._summary(ok)

    def _summary(self, ok: bool) -> None:
        lines = warning_summary(self._model.warnings)
        failure = None if ok else self._model.failure()
        if failure is not None:
            lines += failure_summary(failure, FAILURE_LOG_LINES)
        if lines:
            self._blank()
            for line in lines:
                self._write(line)
        self._stream.flush()

    def _render(self, event: Event) -> None:
        if isinstance(event, StepChanged):
            self._on_step(event.step)
        elif isinstance(event, LogAdded):
            self._line(event.step, log_text(event.step, event.line))
        elif isinstance(event, TransferChanged):
            self._on_transfer(event.step, event.transfer)
        elif isinstance(event, WarningAdded) and event.step.key not in self._closed:
            # Warnings often arrive after their step closed; reopening the block would
            # only repeat its header, and the final summary lists every warning anyway.
            self._line(event.step, f"WARN: {one_line(event.warning.short)}")

    def _on_step(self, step: Step) -> None:
        state = step.state
        if state is StepState.PENDING:
            # BuildKit announces the whole graph up front; steps appear once they start.
            return
        if state is StepState.RUNNING:
            self._closed.discard(step.key)
            # Announce a start only when no other block is open: steps started in parallel
            # would otherwise print empty headers that their output must repeat anyway.
            if self._current is None:
                self._header(step)
            return
        if step.key in self._closed:
            # The daemon repeats a finished step (a cached one once per layer it pulls):
            # its block already ends with that state, unless lines were added since.
            return
        if state is StepState.DONE and self._current is not step and step.key not in self._opened:
            # A step that starts and ends in one message without output is often run
            # again at once (the Dockerfile frontend loads its inputs twice); waiting one
            # message avoids printing a DONE block that the rerun would repeat.
            self._deferred.append(step)
            return
        self._close(step)

    def _close_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for step in deferred:
            if step.finished:
                self._close(step)

    def _close(self, step: Step) -> None:
        self._line(step, closing_text(step))
        self._current = None
        self._closed.add(step.key)

    def _on_transfer(self, step: Step, transfer: Transfer) -> None:
        key = (step.key, transfer.id)
        if not transfer.done and not self._transfer_due(key, transfer):
            return
        if transfer.timestamp is not None:
            self._last_status[key] = transfer.timestamp
        self._line(step, transfer_text(transfer))

    def _transfer_due(self, key: tuple[str, str], transfer: Transfer) -> bool:
        """Whether a running transfer has moved on long enough to deserve a line."""
        since = self._last_status.get(key, transfer.started)
        if since is None or transfer.timestamp is None:
            return key not in self._last_status
        return transfer.timestamp - since >= self._interval

    def _line(self, step: Step, text: str) -> None:
        self._closed.discard(step.key)  # a line after the close reopens the block
        self._header(step)
        self._write(f"#{step.number} {text}")
        self._block_lines += 1

    def _header(self, step: Step) -> None:
        if self._current is step:
            return
        current = self._current
        if current is not None and not current.finished and self._block_lines:
            # Tell the reader the step we leave is still running.
            self._blank()
            self._write(f"#{current.number} ...")
        self._blank()
        self._write(f"#{step.number} {one_line(step.name)}".rstrip())
        self._current = step
        self._block_lines = 0
        self._opened.add(step.key)

    def _blank(self) -> None:
        if self._wrote:
            self._stream.write("\n")
            self._wrote = False

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._wrote = True


def log_text(step: Step, line: LogLine) -> str:
    """A log line with its offset from the step's start: ``0.512 text``."""
    if line.timestamp is None or step.started is None:
        return line.text
    return f"{max(0.0, line.timestamp - step.started):.3f} {line.text}"


def transfer_text(transfer: Transfer) -> str:
    """``transferring context: 12.3MB 0.4s done``."""
    parts = [transfer.label, format_amount(transfer.current, transfer.total)]
    elapsed = transfer.elapsed()
    if elapsed is not None:
        parts.append(format_duration(elapsed))
    if transfer.done:
        parts.append("done")
    return " ".join(p for p in parts if p)


def closing_text(step: Step) -> str:
    """The line that ends a step's block: DONE, CACHED, ERROR or CANCELED."""
    state = step.state
    if state is StepState.CACHED:
        return "CACHED"
    if state is StepState.ERROR:
        return f"ERROR: {one_line(step.error)}"
    if state is StepState.CANCELED:
        return "CANCELED"
    duration = step.duration()
    return "DONE" if duration is None else f"DONE {format_duration(duration)}"


def warning_summary(warnings: list[BuildWarning]) -> list[str]:
    """Lines listing every warning once, for the end of the output."""
    if not warnings:
        return []
    noun = "warning" if len(warnings) == 1 else "warnings"
    lines = [f"{len(warnings)} {noun} found:"]
    for warning in warnings:
        # The frontend's short text already ends with the location, e.g. "(line 4)".
        lines.append(f" - {one_line(warning.short)}")
        lines += [f"   {d}" for d in warning.detail if d]
        if warning.url:
            lines.append(f"   More info: {warning.url}")
    return lines


def failure_summary(failure: Failure, log_lines: int) -> list[str]:
    """The failed step, its last output lines and its error, framed by rules."""
    logs = list(failure.logs)[-log_lines:] if log_lines > 0 else []
    name, error = one_line(failure.name), one_line(failure.error)
    return [_RULE, f" > {name}:", *logs, _RULE, f"ERROR: {error}"]

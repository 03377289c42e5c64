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
from kubectl_build.progress.text import format_amount, format_duration

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
        self._current: str | None = None
        self._wrote = False
        self._last_status: dict[tuple[str, str], float | None] = {}
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
            for event in self._model.apply(resp, prefix=prefix or self._prefix):
                self._render(event)
            self._stream.flush()

    def finish(self, ok: bool) -> None:
        """Write the warnings and, on failure, the failed step with its last lines."""
        with self._lock:
            if not self._finished:
                self._finished = True
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
        elif isinstance(event, WarningAdded):
            self._line(event.step, warning_text(event.warning))

    def _on_step(self, step: Step) -> None:
        state = step.state
        if state is StepState.PENDING:
            # BuildKit announces the whole graph up front; steps appear once they start.
            return
        if state is StepState.RUNNING:
            # Announce a start only when no other block is open: steps started in parallel
            # would otherwise print empty headers that their output must repeat anyway.
            if self._current is None:
                self._header(step)
            return
        self._line(step, closing_text(step))
        self._current = None

    def _on_transfer(self, step: Step, transfer: Transfer) -> None:
        key = (step.key, transfer.id)
        seen = key in self._last_status
        last = self._last_status.get(key)
        now = transfer.timestamp
        throttled = last is not None and now is not None and now - last < self._interval
        if seen and not transfer.done and throttled:
            return
        self._last_status[key] = now
        self._line(step, transfer_text(transfer))

    def _line(self, step: Step, text: str) -> None:
        self._header(step)
        self._write(f"#{step.number} {text}")

    def _header(self, step: Step) -> None:
        if self._current == step.key:
            return
        self._blank()
        self._write(f"#{step.number} {step.name}".rstrip())
        self._current = step.key

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
    parts = [transfer.name, format_amount(transfer.current, transfer.total)]
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
        return f"ERROR: {step.error}"
    if state is StepState.CANCELED:
        return "CANCELED"
    duration = step.duration()
    return "DONE" if duration is None else f"DONE {format_duration(duration)}"


def warning_text(warning: BuildWarning) -> str:
    """``WARN: short (Dockerfile:5)``."""
    where = warning.location()
    return f"WARN: {warning.short}" + (f" ({where})" if where else "")


def warning_summary(warnings: list[BuildWarning]) -> list[str]:
    """Lines listing every warning once, for the end of the output."""
    if not warnings:
        return []
    noun = "warning" if len(warnings) == 1 else "warnings"
    lines = [f"{len(warnings)} {noun} found:"]
    for warning in warnings:
        lines.append(" - " + warning_text(warning).removeprefix("WARN: "))
        lines += [f"   {d}" for d in warning.detail if d]
        if warning.url:
            lines.append(f"   More info: {warning.url}")
    return lines


def failure_summary(failure: Failure, log_lines: int) -> list[str]:
    """The failed step, its last output lines and its error, framed by rules."""
    logs = list(failure.logs)[-log_lines:] if log_lines > 0 else []
    return [_RULE, f" > {failure.name}:", *logs, _RULE, f"ERROR: {failure.error}"]

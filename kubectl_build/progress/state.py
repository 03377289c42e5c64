"""The state the progress displays draw: steps, transfers, warnings and change events.

Produced by :class:`~kubectl_build.progress.model.ProgressModel`; plain data, no logic
beyond derived properties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from kubectl_build.progress.logtail import LogTail

Clock = Callable[[], float]
"""Returns the local time in epoch seconds (``time.time``; replaced in tests). Here, below
every renderer, so that display.py (which picks one) and tty.py share it without a circle."""

_CANCELED = ("context canceled", "canceled")


def is_canceled(error: str) -> bool:
    """Whether a vertex error only says it was cancelled (a sibling failed first)."""
    return error.strip().endswith(_CANCELED)


class StepState(Enum):
    """Where a step is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CACHED = "cached"
    ERROR = "error"
    CANCELED = "canceled"


@dataclass(frozen=True)
class LogLine:
    """One complete line of a step's output."""

    timestamp: float | None
    """Server time of the chunk that completed the line."""
    text: str
    """The line, decoded and free of control sequences."""
    stream: int
    """1 for stdout, 2 for stderr."""


@dataclass
class Transfer:
    """A counter inside a step: a layer download, a context upload, an export phase."""

    id: str
    name: str = ""
    current: int = 0
    total: int = 0
    timestamp: float | None = None
    started: float | None = None
    completed: float | None = None

    @property
    def label(self) -> str:
        """What to show: the ID, else the name.

        The ID carries the detail (``transferring context:``, ``sha256:...``); the name
        is often a generic verb (``transferring``).
        """
        return self.id or self.name

    @property
    def done(self) -> bool:
        """Whether the transfer has finished."""
        return self.completed is not None

    def elapsed(self, now: float | None = None) -> float | None:
        """Seconds from start to completion, to the last update, or to ``now``."""
        if self.started is None:
            return None
        end = self.completed if self.completed is not None else now or self.timestamp
        return None if end is None else max(0.0, end - self.started)


@dataclass(frozen=True)
class BuildWarning:
    """A warning raised by the frontend (for example a Dockerfile lint rule)."""

    vertex: str
    level: int
    short: str
    detail: tuple[str, ...] = ()
    url: str = ""
    filename: str = ""
    line: int | None = None
    """First line of the source range the warning points at, 1-based."""

    def location(self) -> str:
        """``Dockerfile:5``-style location, or an empty string if unknown."""
        if not self.filename:
            return ""
        return f"{self.filename}:{self.line}" if self.line else self.filename


@dataclass
class Step:
    """One BuildKit vertex as the user sees it: ``#N [stage i/n] RUN ...``."""

    key: str
    """The vertex digest, namespaced by the stream prefix when streams are merged."""
    number: int = 0
    """``#N``: steps are numbered as they become visible (start, output), 0 before."""
    name: str = ""
    cached: bool = False
    started: float | None = None
    completed: float | None = None
    error: str = ""
    group: str = ""
    """Progress-group name; BuildKit uses it to bundle helper vertices under one label."""
    partial_since: float | None = None
    """Time of the chunk that began the unfinished output line."""
    transfers: dict[str, Transfer] = field(default_factory=dict)
    logs: LogTail = field(default_factory=LogTail)
    warnings: list[BuildWarning] = field(default_factory=list)

    @property
    def stream(self) -> str:
        """The label of the stream (builder) the step came from; empty for a single stream."""
        return self.key.rpartition("|")[0]

    @property
    def state(self) -> StepState:
        """The step's current state."""
        if self.error:
            return StepState.CANCELED if is_canceled(self.error) else StepState.ERROR
        if self.cached:
            return StepState.CACHED
        if self.completed is not None:
            return StepState.DONE
        return StepState.RUNNING if self.started is not None else StepState.PENDING

    @property
    def finished(self) -> bool:
        """Whether the step will not change any more."""
        return self.state not in (StepState.PENDING, StepState.RUNNING)

    def duration(self, now: float | None = None) -> float | None:
        """Seconds the step ran (so far, if ``now`` is given and it is still running)."""
        if self.started is None:
            return None
        end = self.completed if self.completed is not None else now
        return None if end is None else max(0.0, end - self.started)


@dataclass(frozen=True)
class StepChanged:
    """A step appeared, started, was found cached, completed or failed."""

    step: Step


@dataclass(frozen=True)
class LogAdded:
    """A step printed a complete line."""

    step: Step
    line: LogLine


@dataclass(frozen=True)
class TransferChanged:
    """A transfer of a step moved forward or completed."""

    step: Step
    transfer: Transfer


@dataclass(frozen=True)
class WarningAdded:
    """The frontend reported a warning, attached to a step."""

    step: Step
    warning: BuildWarning


Event = StepChanged | LogAdded | TransferChanged | WarningAdded


@dataclass(frozen=True)
class Failure:
    """What the user needs to see about a failed build."""

    number: int
    """The failing step's ``#N``."""
    name: str
    """The failing step's name, e.g. ``[3/4] RUN make``."""
    error: str
    """BuildKit's error text for the step."""
    logs: tuple[str, ...]
    """The step's last output lines."""
    exit_code: int | None
    """Exit code of the failing command, when the failure was a process exit."""

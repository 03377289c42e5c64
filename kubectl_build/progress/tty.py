"""The live terminal view: running steps with timers and their last output lines.

Drawn with rich: a ``Live`` region on stderr is re-rendered from the model a few times a
second, so timers tick even while BuildKit is silent. Running steps show their transfers
(with a bar when the size is known) and last log lines; finished steps collapse to one
line. When the build ends the live region is replaced by a static summary that stays in
the scrollback, with the failed step and its last lines in red.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console as RichConsole
from rich.console import ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from kubectl_build.progress.model import (
    ProgressModel,
    Step,
    StepState,
    Transfer,
    latest_timestamp,
)
from kubectl_build.progress.plain import failure_summary, warning_summary
from kubectl_build.progress.state import Clock
from kubectl_build.progress.text import format_amount, format_duration, one_line

if TYPE_CHECKING:
    from kubectl_build._proto.control_pb2 import StatusResponse
    from kubectl_build.console import Console

LIVE_LOG_LINES = 6
"""Output lines shown under a running step."""
LIVE_TRANSFERS = 8
"""Transfers shown under a running step (the newest ones)."""
FAILURE_LOG_LINES = 20
"""Output lines of the failed step in the final summary."""
REFRESH_PER_SECOND = 8.0
"""Redraws per second: smooth timers without flooding a slow terminal."""

_DIGEST_RE = re.compile(r"(sha256:[0-9a-f]{64})")
_TIMER_WIDTH = 8
_BAR_WIDTH = 24
_STYLES = {
    StepState.RUNNING: "bold",
    StepState.DONE: "blue",
    StepState.CACHED: "blue",
    StepState.ERROR: "bold red",
    StepState.CANCELED: "yellow",
    StepState.PENDING: "dim",
}
_MARKERS = {StepState.CACHED: "CACHED ", StepState.ERROR: "ERROR ", StepState.CANCELED: "CANCELED "}

# One row of the view: label, optional bar, timer.
Row = tuple[Text, RenderableType, Text]
# A started step and the rows drawn for it.
Block = tuple[Step, list[Row]]


class TtyDisplay:
    """Live progress on a terminal.

    Args:
        console: The rich console to draw on (bound to the real stderr, or to a
            ``StringIO`` in tests).
        prefix: Default stream label for step names, see ``select_display``.
        clock: The local time in epoch seconds; timers use it shifted onto the daemon's
            clock (see :class:`DaemonClock`).
        refresh_per_second: Redraw rate of the live region.
    """

    def __init__(
        self,
        console: RichConsole,
        *,
        prefix: str | None = None,
        clock: Clock = time.time,
        refresh_per_second: float = REFRESH_PER_SECOND,
    ) -> None:
        self._console = console
        self._prefix = prefix
        self._clock = DaemonClock(clock)
        self._model = ProgressModel(log_lines=FAILURE_LOG_LINES)
        # The refresh thread renders while update() folds new messages in.
        self._lock = threading.Lock()
        self._finished = False
        self._live = Live(
            _LiveView(self),
            console=console,
            refresh_per_second=refresh_per_second,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    @classmethod
    def for_console(
        cls, console: Console, *, prefix: str | None = None, clock: Clock = time.time
    ) -> TtyDisplay:
        """A live display on the project console's stderr."""
        rich_console = RichConsole(file=console.stderr, force_terminal=True, highlight=False)
        return cls(rich_console, prefix=prefix, clock=clock)

    @property
    def model(self) -> ProgressModel:
        """The progress state folded from every update so far."""
        return self._model

    def start(self) -> None:
        """Open the live region."""
        self._live.start()

    def update(self, resp: StatusResponse, *, prefix: str | None = None) -> None:
        """Fold the message into the model; the refresh thread redraws."""
        with self._lock:
            self._model.apply(resp, prefix=prefix or self._prefix)
            self._clock.observe(resp)

    def finish(self, ok: bool) -> None:
        """Replace the live region with the static summary (once)."""
        self._live.stop()
        with self._lock:
            if self._finished:
                return
            self._finished = True
            summary = render_summary(self._model, ok)
        self._console.print(summary)

    def render_live(self, max_rows: int | None = None) -> RenderableType:
        """The live view for the current state (the refresh thread calls this)."""
        with self._lock:
            return render_live(self._model, self._clock(), max_rows)


class DaemonClock:
    """The local clock shifted onto the daemon's, learnt from message timestamps.

    Timers subtract daemon timestamps from "now"; a daemon in a pod whose clock is a few
    seconds off would otherwise show frozen or inflated timers. A message is stamped
    before it arrives, so ``stamp - local_now`` never exceeds the true offset; the
    largest value seen is the best estimate.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._offset: float | None = None

    def observe(self, resp: StatusResponse) -> None:
        """Refine the offset from a message's newest timestamp."""
        stamp = latest_timestamp(resp)
        if stamp is None:
            return
        estimate = stamp - self._clock()
        if self._offset is None or estimate > self._offset:
            self._offset = estimate

    def __call__(self) -> float:
        """Current time on the daemon's clock (the local clock until a message arrives)."""
        return self._clock() + (self._offset or 0.0)


class _LiveView:
    """Adapter that renders the display's current state whenever rich asks."""

    def __init__(self, display: TtyDisplay) -> None:
        self._display = display

    def __rich_console__(self, console: RichConsole, options: ConsoleOptions) -> RenderResult:
        # Keep one line free so the cursor never pushes the region off screen.
        yield self._display.render_live(max(options.size.height - 1, 3))


def render_live(model: ProgressModel, now: float, max_rows: int | None = None) -> RenderableType:
    """The live view: a header, then every started step.

    Args:
        model: The progress state.
        now: Current time in epoch seconds, for timers.
        max_rows: Terminal rows available; the oldest finished steps are left out first.
    """
    steps = [s for s in model.steps if s.started is not None]
    blocks = [(s, _live_block(s, now)) for s in _by_stream(steps)]
    streams = len({s.stream for s in steps})
    if max_rows is not None:
        # The header takes a row, and each builder's section title one more.
        blocks = _fit(blocks, max_rows - 1 - (streams if streams > 1 else 0))
    return Group(_header(model, now, None), _grid(_sectioned(blocks, streams > 1)))


def render_summary(model: ProgressModel, ok: bool) -> RenderableType:
    """The final, static view: every step on one line, then warnings and the failure."""
    steps = [step for step in model.steps if _shown(step)]
    blocks = [(step, [_step_row(step, None)]) for step in _by_stream(steps)]
    parts: list[RenderableType] = [_header(model, None, ok),
                                   _grid(_sectioned(blocks, len({s.stream for s in steps}) > 1))]
    warnings = warning_summary(model.warnings)
    if warnings:
        parts.append(Text("\n".join(warnings), style="yellow"))
    failure = None if ok else model.failure()
    if failure is not None:
        parts.append(Text("\n".join(failure_summary(failure, FAILURE_LOG_LINES)), style="red"))
    return Group(*parts)


def _by_stream(steps: list[Step]) -> list[Step]:
    """Steps of parallel solves grouped by their builder, in order of first appearance.

    The sort is stable: within a builder, the ``#N`` order stays.
    """
    first: dict[str, int] = {}
    for index, step in enumerate(steps):
        first.setdefault(step.stream, index)
    return sorted(steps, key=lambda step: first[step.stream])


def _sectioned(blocks: list[Block], sections: bool) -> Iterable[Row]:
    """The rows, with a title row before each builder's steps when several builders build."""
    current: str | None = None
    for step, rows in blocks:
        if sections and step.stream != current:
            current = step.stream
            yield Text(f"--- {current or 'build'}", style="bold"), "", Text()
        yield from rows


def _shown(step: Step) -> bool:
    return step.started is not None or step.finished


def _header(model: ProgressModel, now: float | None, ok: bool | None) -> Text:
    """``[+] Building 12.3s (5/8) FINISHED``."""
    span = model.time_span()
    elapsed = 0.0
    if span is not None:
        elapsed = max(0.0, (now if now is not None else span[1]) - span[0])
    steps = model.steps
    done = sum(1 for s in steps if s.finished)
    text = Text(f"[+] Building {format_duration(elapsed)} ({done}/{len(steps)})")
    if ok is not None:
        text.append(" FINISHED" if ok else " FAILED", style="bold blue" if ok else "bold red")
    return text


def _live_block(step: Step, now: float) -> list[Row]:
    """A step's rows: one line when finished, with transfers and output while running."""
    rows = [_step_row(step, now)]
    if step.finished:
        return rows
    transfers = list(step.transfers.values())[-LIVE_TRANSFERS:]
    rows += [_transfer_row(t, now) for t in transfers]
    rows += [(Text(f" => => # {line}", style="dim"), "", Text()) for line in _tail(step)]
    return rows


def _tail(step: Step) -> list[str]:
    return step.logs.tail(LIVE_LOG_LINES)


def _step_row(step: Step, now: float | None) -> Row:
    state = step.state
    label = Text(" => ", style=_STYLES[state])
    label.append(_MARKERS.get(state, ""), style=_STYLES[state])
    label.append(one_line(step.name) or f"#{step.number}", style=_STYLES[state])
    duration = step.duration(now)
    timer = Text(format_duration(duration) if duration is not None else "", style=_STYLES[state])
    return label, "", timer


def _transfer_row(transfer: Transfer, now: float) -> Row:
    label = Text(f" => => {short_digests(transfer.label)}")
    amount = format_amount(transfer.current, transfer.total)
    if amount:
        label.append(f" {amount}")
    if transfer.done:
        label.append(" done", style="blue")
    bar: RenderableType = ""
    if transfer.total > 0 and not transfer.done:
        bar = ProgressBar(total=transfer.total, completed=transfer.current, width=_BAR_WIDTH)
    elapsed = transfer.elapsed(None if transfer.done else now)
    return label, bar, Text(format_duration(elapsed) if elapsed is not None else "")


def short_digests(text: str) -> str:
    """Abbreviate ``sha256:<64 hex>`` to 12 hex digits so sizes and bars stay visible."""
    return _DIGEST_RE.sub(lambda m: m.group(1)[:19], text)


def _fit(blocks: list[Block], max_rows: int) -> list[Block]:
    """Make the view fit the terminal in `max_rows`.

    Drops the oldest finished steps first, then the oldest detail rows of the tallest
    running steps (each keeps its own line).
    """
    keep = list(blocks)
    total = sum(len(rows) for _, rows in keep)
    index = 0
    while total > max_rows and index < len(keep):
        step, rows = keep[index]
        if step.finished:
            total -= len(rows)
            del keep[index]
        else:
            index += 1
    keep = [(step, list(rows)) for step, rows in keep]
    while total > max_rows:
        tallest = max(keep, key=lambda block: len(block[1]), default=None)
        if tallest is None or len(tallest[1]) <= 1:
            break
        del tallest[1][1]
        total -= 1
    return keep


def _grid(rows: Iterable[Row]) -> Table:
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", width=_TIMER_WIDTH, no_wrap=True)
    for row in rows:
        grid.add_row(*row)
    return grid

"""The progress display strategy: one renderer, chosen once from ``--progress``.

The build orchestration creates a display with :func:`select_display`, calls
:meth:`Display.start` before the status stream opens, :meth:`Display.update` with every
``StatusResponse`` and :meth:`Display.finish` once the build ended. Every display keeps a
:class:`~kubectl_build.progress.model.ProgressModel`, so the orchestration can ask
``display.model.failure()`` for the failed step and exit code whatever was drawn.

``update`` may be called from the thread that reads the status stream while the build's
thread calls ``finish``: every display serialises them, and ignores (or only folds)
messages that arrive after ``finish``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol

from kubectl_build.errors import UsageError
from kubectl_build.progress.model import ProgressModel
from kubectl_build.progress.state import Clock

if TYPE_CHECKING:
    from kubectl_build._proto.control_pb2 import StatusResponse
    from kubectl_build.console import Console

MODES = ("auto", "tty", "plain", "quiet", "rawjson", "none")
"""``none`` is buildx's spelling of no progress at all: drawn like ``quiet``."""
"""Values accepted by ``--progress``."""


class Display(Protocol):
    """What the build orchestration calls; every renderer implements it."""

    @property
    def model(self) -> ProgressModel:
        """The progress state folded from every update so far."""
        ...

    def start(self) -> None:
        """Prepare the output (e.g. open the live region)."""
        ...

    def update(self, resp: StatusResponse, *, prefix: str | None = None) -> None:
        """Fold one status message into the model and draw what changed.

        Args:
            resp: The next message of the ``Control.Status`` stream.
            prefix: Label of the stream this message came from when several builds
                (one per platform or node) share the display; overrides the display's
                default prefix.
        """
        ...

    def finish(self, ok: bool) -> None:
        """Draw the final summary; on failure, the failing step and its last log lines."""
        ...


class QuietDisplay:
    """Draws nothing; still folds the stream so failures can be reported."""

    def __init__(self, *, prefix: str | None = None) -> None:
        self._model = ProgressModel()
        self._prefix = prefix
        self._lock = threading.Lock()

    @property
    def model(self) -> ProgressModel:
        """The progress state folded from every update so far."""
        return self._model

    def start(self) -> None:
        """Nothing to prepare."""

    def update(self, resp: StatusResponse, *, prefix: str | None = None) -> None:
        """Fold the message into the model."""
        with self._lock:
            self._model.apply(resp, prefix=prefix or self._prefix)

    def finish(self, ok: bool) -> None:
        """Nothing to draw."""


def resolve_mode(mode: str, console: Console) -> str:
    """Turn ``auto`` into a concrete mode: a live view on a terminal, plain text otherwise."""
    if mode not in MODES:
        raise UsageError(f"invalid --progress value {mode!r}", hint=f"use one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    if console.quiet:
        return "quiet"
    return "tty" if console.stderr_is_tty else "plain"


def select_display(
    mode: str,
    console: Console,
    *,
    platform_prefix: str | None = None,
    clock: Clock = time.time,
) -> Display:
    """Create the display for ``--progress MODE``; call once per build.

    Args:
        mode: One of :data:`MODES`.
        console: Where to draw; progress always goes to ``console.stderr``.
        platform_prefix: Default stream label put into step names
            (``[linux/arm64 2/4] RUN make``), for builds whose platform is not already
            in the names BuildKit sends.
        clock: Local time for the live timers of running steps; the tty view shifts it
            onto the daemon's clock using the timestamps in the stream.

    Raises:
        UsageError: ``mode`` is not a known mode.
    """
    resolved = resolve_mode(mode, console)
    # Renderers are imported on demand: rich is only loaded when a live view is drawn.
    if resolved == "tty":
        from kubectl_build.progress.tty import TtyDisplay

        return TtyDisplay.for_console(console, prefix=platform_prefix, clock=clock)
    if resolved == "plain":
        from kubectl_build.progress.plain import PlainDisplay

        return PlainDisplay(console.stderr, prefix=platform_prefix)
    if resolved == "rawjson":
        from kubectl_build.progress.rawjson import RawJsonDisplay

        return RawJsonDisplay(console.stderr, prefix=platform_prefix)
    return QuietDisplay(prefix=platform_prefix)

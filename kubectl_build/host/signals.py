"""Console signals on each OS."""

from __future__ import annotations

import signal


def interrupt_on_ctrl_break() -> None:
    """Windows: Ctrl-Break cancels the build like Ctrl-C (its default ends the process at once).

    Call from the main thread. No-op where there is no SIGBREAK.
    """
    ctrl_break = getattr(signal, "SIGBREAK", None)
    if ctrl_break is not None:
        signal.signal(ctrl_break, signal.default_int_handler)

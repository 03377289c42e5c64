"""Build progress: the status-stream model and its renderers (tty, plain, rawjson, quiet).

Usage from the build orchestration::

    display = select_display(options.progress, console)
    display.start()
    for resp in status_stream:
        display.update(resp)
    display.finish(ok)
    failure = display.model.failure()  # failed step, its last lines, exit code

rich is imported only when the tty renderer is selected.
"""

from __future__ import annotations

from kubectl_build.progress.display import MODES, Display, QuietDisplay, select_display
from kubectl_build.progress.model import Failure, ProgressModel, Step, StepState

__all__ = [
    "MODES",
    "Display",
    "Failure",
    "ProgressModel",
    "QuietDisplay",
    "Step",
    "StepState",
    "select_display",
]

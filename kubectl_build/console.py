"""The one place that writes to the terminal.

Results go to stdout, progress and diagnostics to stderr. Everything else in the
package receives a Console and never calls print().
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from kubectl_build.host.process import process_start


@dataclass
class Console:
    """Streams and terminal facts, injected so tests can replace them."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    debug: bool = False
    quiet: bool = False
    started: float = field(default_factory=process_start)
    """Monotonic time the invocation started: its process's start, or, for a build the
    local agent runs, the start of the process that handed it over."""

    @property
    def stderr_is_tty(self) -> bool:
        """Whether progress can be drawn live (a terminal that understands cursor moves)."""
        isatty = getattr(self.stderr, "isatty", None)
        return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"

    def result(self, text: str) -> None:
        """Print a result line (digest, image name...) on stdout."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def info(self, text: str) -> None:
        """Print a diagnostic line on stderr unless quiet."""
        if not self.quiet:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def error(self, text: str) -> None:
        """Print an error line on stderr, always."""
        self.stderr.write(f"error: {text}\n")
        self.stderr.flush()

    def trace(self, text: str) -> None:
        """Print a debug line on stderr when --debug is on."""
        if self.debug:
            self.stderr.write(f"debug: {text}\n")
            self.stderr.flush()

    def elapsed(self) -> float:
        """Seconds since the invocation started."""
        return time.monotonic() - self.started

    def trace_time(self, label: str) -> None:
        """``debug: LABEL 0.123s after start`` when --debug is on."""
        if self.debug:
            self.trace(f"{label} {self.elapsed():.3f}s after start")

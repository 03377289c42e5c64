"""Reassemble a step's output from the byte chunks BuildKit streams.

Chunks split lines (and UTF-8 characters) anywhere, programs redraw lines with carriage
returns and colour them with escape sequences; this module turns that into clean text lines.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

DEFAULT_LOG_LINES = 20
"""Log lines kept per step: enough for a failure report, small enough for huge builds."""

# A single unterminated line (a progress bar redrawn with \r forever) must not grow without
# bound; beyond this many bytes only the end is kept.
_MAX_PARTIAL = 64 * 1024

# CSI sequences (colours, cursor moves) and other C0 controls except tab: tools colour their
# output, but replaying escapes would corrupt the live view and CI logs.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(raw: bytes) -> str:
    """Decode one line of process output for display.

    A carriage return means the program redrew the line, so only the text after the last
    one is what a terminal would show.
    """
    raw = raw.rstrip(b"\r")
    raw = raw[raw.rfind(b"\r") + 1 :]
    return _ANSI_RE.sub("", raw.decode("utf-8", errors="replace"))


@dataclass
class LogTail:
    """The last lines of one step's output, assembled from byte chunks.

    Chunks split lines (and UTF-8 characters) anywhere, so the unfinished end is kept as
    bytes until its newline arrives.
    """

    limit: int = DEFAULT_LOG_LINES
    lines: deque[str] = field(default_factory=deque)
    partial: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[str]:
        """Add a chunk; return the lines it completed."""
        self.partial += data
        *complete, rest = bytes(self.partial).split(b"\n")
        self.partial = bytearray(self._compact(rest))
        done = [clean_text(line) for line in complete]
        self._keep(done)
        return done

    def flush(self) -> str | None:
        """Complete the unfinished line (the step ended without a newline)."""
        if not self.partial:
            return None
        text = clean_text(bytes(self.partial))
        self.partial.clear()
        self._keep([text])
        return text

    @property
    def pending(self) -> str:
        """The unfinished line as a terminal would show it now."""
        return clean_text(bytes(self.partial))

    def tail(self, count: int) -> list[str]:
        """The last ``count`` lines, the unfinished one included."""
        lines = list(self.lines)
        pending = self.pending
        if pending:
            lines.append(pending)
        return lines[-count:] if count > 0 else []

    def _keep(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        while len(self.lines) > self.limit:
            self.lines.popleft()

    @staticmethod
    def _compact(rest: bytes) -> bytes:
        # Text before a non-final \r has already been overdrawn; the final \r must stay
        # because a following \n turns it into a plain CRLF.
        cut = rest.rfind(b"\r", 0, max(len(rest) - 1, 0))
        if cut >= 0:
            rest = rest[cut + 1 :]
        return rest[-_MAX_PARTIAL:]

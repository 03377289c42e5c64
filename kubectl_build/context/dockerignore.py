"""Parse .dockerignore files exactly like moby's `ignorefile.ReadAll`.

The parsed list is what the Dockerfile frontend sends back as the context's
exclude patterns, so every quirk matters: the comment test runs before
trimming, a trailing slash is cleaned away, and there is no gitignore-style
anchoring.
"""

from __future__ import annotations

from kubectl_build.context.patterns import go_clean, go_trim_space
from kubectl_build.errors import ContextError

__all__ = ["MAX_LINE_BYTES", "read_ignore_file"]

MAX_LINE_BYTES = 64 * 1024 - 1
"""Longest line Go's bufio.Scanner accepts (its buffer also holds the newline)."""

_BOM = b"\xef\xbb\xbf"


def read_ignore_file(data: bytes) -> list[str]:
    """Turn the bytes of an ignore file into patterns, in file order.

    Args:
        data: The raw file content.

    Returns:
        Patterns as BuildKit receives them: comments and blank lines dropped,
        white space trimmed, paths cleaned, exceptions prefixed with "!".

    Raises:
        ContextError: A line is longer than Go's scanner allows, or a line is a
            bare "!" (BuildKit would reject the pattern list later anyway).
    """
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the scanner yields no empty token after a final newline
    patterns: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise ContextError(
                f"failed parsing .dockerignore: line {number} is longer than "
                f"{MAX_LINE_BYTES} bytes (bufio.Scanner: token too long)",
                "shorten or split that line",
            )
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        pattern = _parse_line(_go_string(raw.removesuffix(b"\r")))
        if pattern == "!":
            raise ContextError(
                f'failed parsing .dockerignore: line {number}: illegal exclusion pattern: "!"',
                'remove the lone "!" or name what it should re-include',
            )
        if pattern is not None:
            patterns.append(pattern)
    return patterns


def _go_string(raw: bytes) -> str:
    """Decode like Go text handling: each invalid byte becomes U+FFFD.

    Invalid UTF-8 reaches the sender as U+FFFD anyway, because the frontend
    ships the patterns inside JSON.
    """
    text = raw.decode("utf-8", "surrogateescape")
    if text.isascii():
        return text
    return "".join("\ufffd" if "\udc80" <= ch <= "\udcff" else ch for ch in text)


def _parse_line(line: str) -> str | None:
    if line.startswith("#"):
        return None
    pattern = go_trim_space(line)
    if not pattern:
        return None
    invert = pattern.startswith("!")
    if invert:
        pattern = go_trim_space(pattern[1:])
    if pattern:
        pattern = go_clean(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
    return "!" + pattern if invert else pattern

"""Number and time formatting shared by the progress renderers."""

from __future__ import annotations

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def format_size(size: int) -> str:
    """Human size in decimal units with three significant digits: ``12.3MB``, ``512B``."""
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    if unit == 0:
        return f"{size}B"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f}{_UNITS[unit]}"


def one_line(text: str) -> str:
    """Join a multi-line text (a heredoc RUN, a wrapped error) so it stays one line."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def format_duration(seconds: float) -> str:
    """Step timer as BuildKit's tools show it: ``1.2s``."""
    return f"{seconds:.1f}s"


def format_amount(current: int, total: int) -> str:
    """Transfer amount: ``1.20MB / 3.40MB`` when the total is known, else ``1.20MB``."""
    if total > 0:
        return f"{format_size(current)} / {format_size(total)}"
    return format_size(current) if current > 0 else ""

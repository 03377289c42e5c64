"""``--shm-size`` and ``--ulimit`` for RUN steps, parsed as docker's units package does.

Both become frontend attributes: ``shm-size`` in bytes, ``ulimit`` as comma-separated
``NAME=SOFT:HARD`` (one per name, the last given wins; sorted here, where buildx's order
is a Go map's).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kubectl_build.errors import UsageError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
_ULIMIT_FORMS = f"use NAME=SOFT[:HARD] with NAME one of {', '.join(ULIMIT_NAMES)}"


def parse_shm_size(value: str) -> int:
    """Bytes of ``64m``, ``1g``, ``1.5GiB`` or ``1048576`` (binary units, as docker reads them).

    Raises:
        UsageError: not a size (negative sizes included).
    """
    match = _SIZE.match(value.strip())
    if not match:
        raise UsageError(f'invalid --shm-size "{value}": not a size', "use a size such as 64m or 2g")
    return int(float(match[1]) * _UNITS[(match[2] or "").lower()])  # 0: the daemon's default, as in docker


def _limit(text: str, value: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise UsageError(f'invalid --ulimit "{value}": {text!r} is not a number', _ULIMIT_FORMS) from None


def parse_ulimit(value: str) -> tuple[str, int, int]:
    """(name, soft, hard) of one ``NAME=SOFT[:HARD]``; a missing hard limit is the soft one."""
    name, sep, limits = value.partition("=")
    if not sep or not limits:
        raise UsageError(f'invalid --ulimit "{value}": expected NAME=SOFT[:HARD]', _ULIMIT_FORMS)
    if name not in ULIMIT_NAMES:
        raise UsageError(f'invalid --ulimit "{value}": unknown limit "{name}"', _ULIMIT_FORMS)
    soft_text, _, hard_text = limits.partition(":")
    soft = _limit(soft_text, value)
    hard = _limit(hard_text, value) if hard_text else soft
    if soft > hard:
        raise UsageError(f'invalid --ulimit "{value}": the soft limit {soft} is above the hard limit {hard}',
                         _ULIMIT_FORMS)
    return name, soft, hard


def ulimit_attr(values: Iterable[str]) -> str:
    """The frontend's ``ulimit`` attribute for these flags ("" for none)."""
    limits = {name: (soft, hard) for name, soft, hard in map(parse_ulimit, values)}
    return ",".join(f"{name}={soft}:{hard}" for name, (soft, hard) in sorted(limits.items()))

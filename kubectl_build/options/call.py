"""``--call`` and ``--check``: ask the frontend a question instead of building.

The value is buildx's: ``NAME[,format=json][,ignorestatus=true]``. ``check`` is the
frontend's ``lint`` subrequest (buildx spells it both ways), ``build`` is an ordinary
build. The frontend answers ``frontend.<NAME>``: its text and JSON renderings and the
status the build should exit with.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_build.errors import UsageError

CALLS = ("build", "check", "outline", "targets", "subrequests.describe")
"""What --call accepts (``lint`` is accepted as check's other name)."""
_FORMATS = ("json",)
_FORMS = f"use --call {'|'.join(CALLS)}[,format=json][,ignorestatus=true]"


@dataclass(frozen=True)
class CallFunc:
    """A frontend subrequest in place of the build."""

    name: str
    """The subrequest: lint, outline, targets or subrequests.describe."""
    format: str = ""
    """``json`` prints the frontend's JSON answer; empty prints its text."""
    ignore_status: bool = False
    """Exit 0 even when the frontend reports findings."""

    @property
    def request_id(self) -> str:
        """The frontend's ``requestid`` attribute."""
        return f"frontend.{self.name}"


def parse_call(value: str | None, check: bool = False) -> CallFunc | None:
    """The subrequest of ``--call VALUE`` (or ``--check``); None for an ordinary build.

    Raises:
        UsageError: an unknown name or field, a field without a name, both flags.
    """
    if check:
        if value is not None:
            raise UsageError("--check and --call cannot be combined",
                             "--check is --call check: give one of them")
        return CallFunc("lint")
    if value is None:
        return None
    name, fmt, ignore = "", "", False
    for field in (f.strip() for f in value.split(",")):
        key, eq, val = field.partition("=")
        if not eq:
            if name:
                raise UsageError(f'invalid --call "{value}": more than one name', _FORMS)
            name = key
        elif key == "format":
            fmt = _format(val, value)
        elif key == "ignorestatus":
            ignore = _bool(val, value)
        else:
            raise UsageError(f'invalid --call "{value}": unknown field {key!r}', _FORMS)
    name = "lint" if name == "check" else name
    if name not in (*CALLS, "lint"):
        raise UsageError(f'invalid --call "{value}": unknown subrequest {name!r}' if name
                         else f'invalid --call "{value}": no subrequest named', _FORMS)
    return None if name == "build" else CallFunc(name, fmt, ignore)


def _format(text: str, value: str) -> str:
    if text not in _FORMATS:
        raise UsageError(f'invalid --call "{value}": format {text!r} is not json', _FORMS)
    return text


def _bool(text: str, value: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise UsageError(f'invalid --call "{value}": ignorestatus {text!r} is not true or false', _FORMS)

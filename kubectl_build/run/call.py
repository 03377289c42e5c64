"""What ``--call``/``--check`` print: the frontend's answer as buildx shows it. Pure.

The frontend renders its own answer (``result.txt``, ``result.json``) and says how the
build should exit (``result.statuscode``: 1 when lint found something). Lint gets
buildx's summary line before the findings; ``format=json`` prints the JSON alone.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_build.errors import BuildFailedError
from kubectl_build.options.call import CallFunc


@dataclass(frozen=True)
class CallAnswer:
    """What goes to stdout, and the exit code."""

    text: str
    code: int


def render_call(call: CallFunc, metadata: Mapping[str, str], dockerfile: str = "Dockerfile") -> CallAnswer:
    """The answer to print for the frontend's result metadata.

    ``dockerfile`` is the Dockerfile's path as the user named it: lint findings show it
    where the frontend, which only saw the file's name, shows the name (buildx does so).

    Raises:
        BuildFailedError: lint could not read the Dockerfile (its error, with the source).
    """
    if call.format == "json":
        text = metadata.get("result.json", "{}").rstrip("\n") + "\n"
    elif call.name == "lint":
        text = _lint_text(metadata, dockerfile)
    else:
        text = metadata.get("result.txt", "")
    return CallAnswer(text, 0 if call.ignore_status else _status(metadata))


def _lint_text(metadata: Mapping[str, str], dockerfile: str) -> str:
    try:
        result = json.loads(metadata.get("result.json") or "{}")
    except ValueError:
        result = {}
    if not isinstance(result, dict):
        result = {}
    failure = result.get("buildError") or result.get("error")
    if failure:
        raise _check_failed(failure, result.get("sources") or [])
    warnings = result.get("warnings") or []
    findings = _with_path(metadata.get("result.txt", ""), dockerfile)
    if not warnings:
        return findings + "Check complete, no warnings found.\n"
    count = "1 warning has been found!" if len(warnings) == 1 else \
        f"{len(warnings)} warnings have been found!"
    return f"Check complete, {count}\n{findings}"


def _with_path(findings: str, dockerfile: str) -> str:
    """The findings' ``NAME:LINE`` source lines with the path the user gave."""
    name = os.path.basename(dockerfile)
    return re.sub(rf"(?m)^{re.escape(name)}:(\d+)$", lambda m: f"{dockerfile}:{m[1]}", findings)


def _check_failed(failure: Any, sources: Any) -> BuildFailedError:
    """The Dockerfile could not be checked at all (a syntax error): where, and why."""
    message = failure.get("message") if isinstance(failure, dict) else str(failure)
    try:  # the frontend's shape: location.ranges[0].start.line into sources[sourceIndex]
        location = failure.get("location") or {}
        line = location["ranges"][0]["start"]["line"]
        name = sources[location.get("sourceIndex", 0)]["filename"]
        where = f" ({name}:{line})"
    except (AttributeError, LookupError, TypeError):
        where = ""
    return BuildFailedError(f"cannot check the Dockerfile{where}: {message or 'the frontend failed'}",
                            "fix that line and run the check again")


def _status(metadata: Mapping[str, str]) -> int:
    try:
        return int(metadata.get("result.statuscode", "0").strip() or 0)
    except ValueError:
        return 0

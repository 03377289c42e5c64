"""Read ``buildctl --progress=rawjson`` output back into StatusResponse messages.

The ``golden/real-*.buildctl.jsonl`` files were recorded from buildctl against a real
buildkitd; converting them lets the tests replay real streams through our displays and
check that our rawjson output is line-for-line identical to buildctl's.
"""

from __future__ import annotations

import base64
import calendar
import json
import time
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from kubectl_build._proto.control_pb2 import (
    Position,
    ProgressGroup,
    Range,
    SourceInfo,
    StatusResponse,
    Vertex,
    VertexLog,
    VertexStatus,
    VertexWarning,
)

Obj = dict[str, Any]


def load(path: Path) -> list[StatusResponse]:
    """Every line of a recorded rawjson file as a StatusResponse."""
    return [to_status(json.loads(line)) for line in path.read_text().splitlines() if line]


def to_status(obj: Obj) -> StatusResponse:
    """One rawjson object as a StatusResponse."""
    return StatusResponse(
        vertexes=[_vertex(v) for v in obj.get("vertexes", [])],
        statuses=[_status(s) for s in obj.get("statuses", [])],
        logs=[_log(lg) for lg in obj.get("logs", [])],
        warnings=[_warning(w) for w in obj.get("warnings", [])],
    )


def parse_time(text: str) -> Timestamp:
    """RFC 3339 UTC with up to nine fraction digits."""
    assert text.endswith("Z"), text
    whole, _, fraction = text[:-1].partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return Timestamp(seconds=seconds, nanos=int(fraction.ljust(9, "0")) if fraction else 0)


def _times(obj: Obj, target: Any, *names: str) -> None:
    for name in names:
        if name in obj:
            getattr(target, name).CopyFrom(parse_time(obj[name]))


def _vertex(obj: Obj) -> Vertex:
    vertex = Vertex(
        digest=obj.get("digest", ""),
        inputs=obj.get("inputs", []),
        name=obj.get("name", ""),
        cached=obj.get("cached", False),
        error=obj.get("error", ""),
    )
    _times(obj, vertex, "started", "completed")
    if "progressGroup" in obj:
        group = obj["progressGroup"]
        vertex.progress_group.CopyFrom(
            ProgressGroup(id=group.get("id", ""), name=group.get("name", ""), weak=group.get("weak", False))
        )
    return vertex


def _status(obj: Obj) -> VertexStatus:
    status = VertexStatus(
        id=obj["id"],
        vertex=obj.get("vertex", ""),
        name=obj.get("name", ""),
        current=obj["current"],
        total=obj.get("total", 0),
    )
    _times(obj, status, "timestamp", "started", "completed")
    return status


def _log(obj: Obj) -> VertexLog:
    log = VertexLog(vertex=obj.get("vertex", ""), stream=obj.get("stream", 0), msg=_bytes(obj["data"]))
    _times(obj, log, "timestamp")
    return log


def _warning(obj: Obj) -> VertexWarning:
    warning = VertexWarning(
        vertex=obj.get("vertex", ""),
        level=obj.get("level", 0),
        short=_bytes(obj.get("short", "")),
        detail=[_bytes(d) for d in obj.get("detail", [])],
        url=obj.get("url", ""),
        ranges=[_range(r) for r in obj.get("range", [])],
    )
    if "sourceInfo" in obj:
        info = obj["sourceInfo"]
        warning.info.CopyFrom(
            SourceInfo(
                filename=info.get("filename", ""),
                data=_bytes(info.get("data", "")),
                language=info.get("language", ""),
            )
        )
    return warning


def _range(obj: Obj) -> Range:
    start, end = obj.get("start", {}), obj.get("end", {})
    return Range(
        start=Position(line=start.get("line", 0), character=start.get("character", 0)),
        end=Position(line=end.get("line", 0), character=end.get("character", 0)),
    )


def _bytes(text: str) -> bytes:
    return base64.b64decode(text)

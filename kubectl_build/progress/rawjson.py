"""Machine-readable progress: one JSON object per status message, one per line.

The objects have the shape ``buildctl --progress=rawjson`` prints (BuildKit's
``SolveStatus`` JSON): ``vertexes``, ``statuses``, ``logs`` and ``warnings``, bytes in
base64, times in RFC 3339 with nanoseconds, empty fields left out.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from kubectl_build.progress.model import ProgressModel

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

    from kubectl_build._proto.control_pb2 import (
        Range,
        StatusResponse,
        Vertex,
        VertexLog,
        VertexStatus,
        VertexWarning,
    )

JsonObject = dict[str, Any]

# How Go's encoding/json writes an unset time.Time, which BuildKit's JSON never omits.
_ZERO_TIME = "0001-01-01T00:00:00Z"
# Go escapes HTML-significant characters and the JavaScript line separators.
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


class RawJsonDisplay:
    """Writes every status message as one JSON line.

    Args:
        stream: Where to write (the console's stderr).
        prefix: Default stream label; only used for the model's step names, the JSON
            carries the daemon's data unchanged.
    """

    def __init__(self, stream: TextIO, *, prefix: str | None = None) -> None:
        self._stream = stream
        self._prefix = prefix
        self._model = ProgressModel()
        # Messages arrive on the status thread; nothing is written after finish().
        self._lock = threading.Lock()
        self._finished = False

    @property
    def model(self) -> ProgressModel:
        """The progress state folded from every update so far."""
        return self._model

    def start(self) -> None:
        """Nothing to prepare."""

    def update(self, resp: StatusResponse, *, prefix: str | None = None) -> None:
        """Fold the message into the model and write it as one JSON line.

        A message of one of several parallel solves (``prefix`` given) gets a leading
        ``"group"`` field naming the builder (and the platform of a one-platform solve).
        """
        obj = status_json(resp)
        line = encode_json({"group": prefix, **obj} if prefix else obj)
        with self._lock:
            self._model.apply(resp, prefix=prefix or self._prefix)
            if not self._finished:
                self._stream.write(line + "\n")
                self._stream.flush()

    def finish(self, ok: bool) -> None:
        """Stop writing; consumers read the outcome from the vertices' errors."""
        with self._lock:
            self._finished = True


def encode_json(obj: JsonObject) -> str:
    """Compact JSON escaped as Go's encoding/json does, so lines match buildctl's byte for byte."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_GO_ESCAPES)


def status_json(resp: StatusResponse) -> JsonObject:
    """The JSON object for one status message."""
    return _compact(
        {
            "vertexes": [vertex_json(v) for v in resp.vertexes],
            "statuses": [vertex_status_json(s) for s in resp.statuses],
            "logs": [vertex_log_json(log) for log in resp.logs],
            "warnings": [vertex_warning_json(w) for w in resp.warnings],
        }
    )


def vertex_json(vertex: Vertex) -> JsonObject:
    """JSON for one vertex."""
    group = vertex.progress_group
    return _compact(
        {
            "digest": vertex.digest,
            "inputs": list(vertex.inputs),
            "name": vertex.name,
            "started": _time(vertex.started) if vertex.HasField("started") else None,
            "completed": _time(vertex.completed) if vertex.HasField("completed") else None,
            "cached": vertex.cached,
            "error": vertex.error,
            "progressGroup": _compact({"id": group.id, "name": group.name, "weak": group.weak})
            if vertex.HasField("progress_group")
            else None,
        }
    )


def vertex_status_json(status: VertexStatus) -> JsonObject:
    """JSON for one transfer counter; ``id`` and ``current`` are always present."""
    head = {"id": status.id, **_compact({"vertex": status.vertex, "name": status.name})}
    times = _compact(
        {
            "timestamp": _time(status.timestamp) if status.HasField("timestamp") else None,
            "started": _time(status.started) if status.HasField("started") else None,
            "completed": _time(status.completed) if status.HasField("completed") else None,
        }
    )
    return {**head, **_compact({"total": status.total}), "current": status.current, **times}


def vertex_log_json(log: VertexLog) -> JsonObject:
    """JSON for one log chunk; ``data`` and ``timestamp`` are always present."""
    fields = _compact({"vertex": log.vertex, "stream": log.stream})
    when = _time(log.timestamp) if log.HasField("timestamp") else _ZERO_TIME
    return {**fields, "data": _b64(log.msg), "timestamp": when}


def vertex_warning_json(warning: VertexWarning) -> JsonObject:
    """JSON for one warning, with its source file and ranges."""
    info = warning.info
    source = (
        _compact({"filename": info.filename, "data": _b64(info.data), "language": info.language})
        if warning.HasField("info")
        else None
    )
    return _compact(
        {
            "vertex": warning.vertex,
            "level": warning.level,
            "short": _b64(warning.short),
            "detail": [_b64(d) for d in warning.detail],
            "url": warning.url,
            "sourceInfo": source,
            "range": [_range_json(r) for r in warning.ranges],
        }
    )


def _range_json(rng: Range) -> JsonObject:
    return {
        "start": _compact({"line": rng.start.line, "character": rng.start.character}),
        "end": _compact({"line": rng.end.line, "character": rng.end.character}),
    }


def _time(ts: Timestamp) -> str:
    """RFC 3339 in UTC with up to nine fraction digits, trailing zeros trimmed."""
    base = datetime.fromtimestamp(ts.seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{ts.nanos:09d}".rstrip("0") if ts.nanos else ""
    return f"{base}{fraction}Z"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _compact(obj: JsonObject) -> JsonObject:
    """Drop empty values, as the omitempty JSON of BuildKit's tools does."""
    return {k: v for k, v in obj.items() if v not in (None, "", 0, False, [], {})}

"""Hand-built BuildKit status streams for the progress tests.

Each stream imitates what buildkitd sends for one kind of build: vertices announced
before they start, repeated with their completion, logs split at arbitrary byte
boundaries, transfers re-sent as they progress. They are serialised to
``golden/<name>.binpb`` (length-delimited StatusResponse messages) so the golden outputs
are checked against recorded bytes, and regenerated with ``UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

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

GOLDEN = Path(__file__).parent / "golden"
T0 = 1_800_000_000
"""Stream start, in epoch seconds; every helper takes offsets from it."""

DOCKERFILE = b"FROM alpine\nRUN make\nCOPY . /src\nRUN exit 3\n"


def ts(offset: float) -> Timestamp:
    """A Timestamp ``offset`` seconds after T0 (millisecond resolution keeps it exact)."""
    millis = round(offset * 1000)
    return Timestamp(seconds=T0 + millis // 1000, nanos=(millis % 1000) * 1_000_000)


def vertex(  # noqa: PLR0913 - test data: one keyword per field it varies
    digest: str,
    name: str,
    *,
    started: float | None = None,
    completed: float | None = None,
    cached: bool = False,
    error: str = "",
    inputs: Iterable[str] = (),
) -> Vertex:
    """A Vertex snapshot."""
    v = Vertex(digest=digest, name=name, cached=cached, error=error, inputs=list(inputs))
    if started is not None:
        v.started.CopyFrom(ts(started))
    if completed is not None:
        v.completed.CopyFrom(ts(completed))
    return v


def log(digest: str, offset: float, msg: bytes, stream: int = 1) -> VertexLog:
    """A log chunk."""
    return VertexLog(vertex=digest, timestamp=ts(offset), stream=stream, msg=msg)


def status(  # noqa: PLR0913 - test data: one keyword per field it varies
    digest: str,
    ident: str,
    offset: float,
    *,
    current: int = 0,
    total: int = 0,
    started: float | None = None,
    completed: float | None = None,
) -> VertexStatus:
    """A transfer counter snapshot."""
    s = VertexStatus(id=ident, vertex=digest, name=ident, current=current, total=total, timestamp=ts(offset))
    if started is not None:
        s.started.CopyFrom(ts(started))
    if completed is not None:
        s.completed.CopyFrom(ts(completed))
    return s


def resp(
    vertexes: Iterable[Vertex] = (),
    statuses: Iterable[VertexStatus] = (),
    logs: Iterable[VertexLog] = (),
    warnings: Iterable[VertexWarning] = (),
) -> StatusResponse:
    """One StatusResponse."""
    return StatusResponse(vertexes=vertexes, statuses=statuses, logs=logs, warnings=warnings)


D_DEF = "sha256:" + "1" * 64
D_META = "sha256:" + "2" * 64
D_CTX = "sha256:" + "3" * 64
D_FROM = "sha256:" + "4" * 64
D_MAKE = "sha256:" + "5" * 64
D_COPY = "sha256:" + "6" * 64
D_EXIT = "sha256:" + "7" * 64
D_EXPORT = "sha256:" + "8" * 64

N_DEF = "[internal] load build definition from Dockerfile"
N_META = "[internal] load metadata for docker.io/library/alpine:latest"
N_CTX = "[internal] load build context"
N_FROM = "[1/4] FROM docker.io/library/alpine:latest@sha256:" + "a" * 64
N_MAKE = "[2/4] RUN make"
N_COPY = "[3/4] COPY . /src"
N_EXIT = "[4/4] RUN exit 3"
N_EXPORT = "exporting to image"
EXIT_ERROR = 'process "/bin/sh -c exit 3" did not complete successfully: exit code: 3'


def _definition() -> list[StatusResponse]:
    return [
        resp([vertex(D_DEF, N_DEF)]),
        resp([vertex(D_DEF, N_DEF, started=0.0)]),
        resp(
            [vertex(D_DEF, N_DEF, started=0.0, completed=0.031)],
            [
                status(
                    D_DEF,
                    "transferring dockerfile:",
                    0.03,
                    current=72,
                    started=0.01,
                    completed=0.03,
                )
            ],
        ),
        resp([vertex(D_META, N_META, started=0.04)]),
        resp([vertex(D_META, N_META, started=0.04, completed=1.25)]),
    ]


def cached_build() -> list[StatusResponse]:
    """A rebuild where every step comes from the cache."""
    steps = [(D_FROM, N_FROM), (D_MAKE, N_MAKE), (D_COPY, N_COPY)]
    return [
        *_definition(),
        resp([vertex(d, n) for d, n in steps]),
        resp([vertex(d, n, cached=True, started=1.3, completed=1.3) for d, n in steps]),
        resp(
            [vertex(D_EXPORT, N_EXPORT, started=1.31)],
            [status(D_EXPORT, "exporting layers", 1.31, started=1.31)],
        ),
        resp(
            [vertex(D_EXPORT, N_EXPORT, started=1.31, completed=1.42)],
            [
                status(D_EXPORT, "exporting layers", 1.42, started=1.31, completed=1.42),
                status(D_EXPORT, "writing image sha256:" + "b" * 64, 1.42, started=1.41, completed=1.42),
            ],
        ),
    ]


def multistep_build() -> list[StatusResponse]:
    """Steps with output: lines split across chunks, carriage-return redraws, stderr."""
    return [
        *_definition(),
        resp(
            [
                vertex(D_FROM, N_FROM, started=1.3, completed=1.3, cached=True),
                vertex(D_MAKE, N_MAKE, inputs=[D_FROM]),
            ]
        ),
        resp(
            [vertex(D_MAKE, N_MAKE, started=1.5, inputs=[D_FROM])],
            logs=[log(D_MAKE, 1.712, b"cc -c main.c\ncc -o a")],
        ),
        resp(logs=[log(D_MAKE, 2.104, b"pp main.o\nlinking 10%\rlinking 55%\r")]),
        resp(
            logs=[
                log(D_MAKE, 2.5, b"linking 100%\r\n"),
                log(D_MAKE, 2.61, b"\x1b[33mwarning: unused variable\x1b[0m\n", stream=2),
            ]
        ),
        resp([vertex(D_COPY, N_COPY, started=2.7, inputs=[D_MAKE])]),
        resp(logs=[log(D_MAKE, 3.0, b"done, no newline")]),
        resp([vertex(D_MAKE, N_MAKE, started=1.5, completed=3.2, inputs=[D_FROM])]),
        resp([vertex(D_COPY, N_COPY, started=2.7, completed=3.31, inputs=[D_MAKE])]),
        resp([vertex(D_EXPORT, N_EXPORT, started=3.4, completed=3.9)]),
    ]


def failing_build() -> list[StatusResponse]:
    """A RUN that exits 3 after printing, while a sibling step is cancelled."""
    return [
        *_definition(),
        resp([vertex(D_FROM, N_FROM, started=1.3, completed=1.3, cached=True)]),
        resp(
            [vertex(D_EXIT, N_EXIT, started=1.4), vertex(D_COPY, N_COPY, started=1.4)],
            logs=[
                log(D_EXIT, 1.55, b"checking the frobnicator\n"),
                log(D_EXIT, 1.6, b"error: frobnicator missing\n", stream=2),
            ],
        ),
        resp(
            [
                vertex(D_EXIT, N_EXIT, started=1.4, completed=1.71, error=EXIT_ERROR),
                vertex(D_COPY, N_COPY, started=1.4, completed=1.72, error="context canceled"),
            ]
        ),
    ]


def transfer_build() -> list[StatusResponse]:
    """A context upload without a total and a layer download with one."""
    layer = "sha256:" + "c" * 64
    size = 3_398_000
    return [
        resp([vertex(D_CTX, N_CTX, started=0.0)]),
        resp(statuses=[status(D_CTX, "transferring context:", 0.2, current=1_200_000, started=0.0)]),
        resp(statuses=[status(D_CTX, "transferring context:", 0.5, current=8_400_000, started=0.0)]),
        resp(statuses=[status(D_CTX, "transferring context:", 1.1, current=12_345_678, started=0.0)]),
        resp(
            [vertex(D_CTX, N_CTX, started=0.0, completed=1.25)],
            [
                status(
                    D_CTX,
                    "transferring context:",
                    1.2,
                    current=12_345_678,
                    started=0.0,
                    completed=1.2,
                )
            ],
        ),
        resp(
            [vertex(D_FROM, "[1/2] FROM docker.io/library/alpine:latest", started=1.3)],
            [
                status(
                    D_FROM,
                    "resolve docker.io/library/alpine:latest",
                    1.31,
                    started=1.3,
                    completed=1.31,
                ),
                status(D_FROM, layer, 1.4, current=0, total=size, started=1.4),
            ],
        ),
        resp(statuses=[status(D_FROM, layer, 1.9, current=1_048_576, total=size, started=1.4)]),
        resp(statuses=[status(D_FROM, layer, 2.95, current=size, total=size, started=1.4)]),
        resp(
            statuses=[
                status(D_FROM, layer, 3.0, current=size, total=size, started=1.4, completed=3.0),
                status(D_FROM, "extracting " + layer, 3.1, started=3.0),
            ]
        ),
        resp(
            [vertex(D_FROM, "[1/2] FROM docker.io/library/alpine:latest", started=1.3, completed=3.3)],
            [status(D_FROM, "extracting " + layer, 3.3, started=3.0, completed=3.3)],
        ),
    ]


def warning_build() -> list[StatusResponse]:
    """Frontend lint warnings pointing at Dockerfile lines."""
    info = SourceInfo(filename="Dockerfile", data=DOCKERFILE, language="Dockerfile")
    lint = VertexWarning(
        vertex=D_DEF,
        level=1,
        short=b"JSONArgsRecommended: JSON arguments recommended for CMD (line 4)",
        detail=[b"JSON arguments protect against unintended OS signal behavior"],
        url="https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
        info=info,
        ranges=[Range(start=Position(line=4, character=0), end=Position(line=4, character=9))],
    )
    casing = VertexWarning(vertex=D_DEF, level=1, short=b"FromAsCasing: 'as' and 'FROM' differ (line 1)")
    grouped = vertex(D_EXPORT, N_EXPORT, started=1.31, completed=1.4)
    grouped.progress_group.CopyFrom(ProgressGroup(id="export", name="exporting", weak=True))
    return [
        *_definition()[:2],
        resp([vertex(D_DEF, N_DEF, started=0.0, completed=0.031)], warnings=[lint, casing]),
        resp([grouped]),
    ]


STREAMS: dict[str, Callable[[], list[StatusResponse]]] = {
    "cached": cached_build,
    "multistep": multistep_build,
    "failing": failing_build,
    "transfer": transfer_build,
    "warnings": warning_build,
}
"""Every golden stream by name."""

FAILING = {"failing"}
"""Streams whose build fails (rendered with ``finish(False)``)."""


def encode_stream(messages: Iterable[StatusResponse]) -> bytes:
    """Length-delimited serialisation: a varint size before each message."""
    out = bytearray()
    for message in messages:
        data = message.SerializeToString(deterministic=True)
        out += _varint(len(data)) + data
    return bytes(out)


def decode_stream(data: bytes) -> list[StatusResponse]:
    """Inverse of :func:`encode_stream`."""
    messages = []
    pos = 0
    while pos < len(data):
        size, pos = _read_varint(data, pos)
        messages.append(StatusResponse.FromString(data[pos : pos + size]))
        pos += size
    return messages


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos

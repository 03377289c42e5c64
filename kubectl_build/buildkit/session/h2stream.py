"""One RPC of the session's HTTP/2 server: gRPC framing, DATA frames, per-stream state.

The pieces `h2server.H2Server` is made of that know nothing of the connection: how a gRPC
message is framed and cut into HTTP/2 DATA frames (sliced, never copied), what one
stream holds while its handler runs, and the handler types a service may register.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import grpc

from kubectl_build.buildkit.wire import Buffer

END = object()
"""Queued after a stream's last request message."""


@dataclass(frozen=True)
class Framed:
    """gRPC messages already framed (5-byte prefix each), sent back to back.

    The buffers are never joined here: they are cut into HTTP/2 DATA frames as
    views and copied once, into the outgoing Session message.
    """

    parts: tuple[Buffer, ...]


def data_frame_header(length: int, stream_id: int) -> bytes:
    """The 9-byte header of an HTTP/2 DATA frame (type 0, no flags)."""
    return (length << 48 | stream_id).to_bytes(9, "big")


def take_data_frames(parts: deque[Buffer], stream_id: int, budget: int,
                     max_frame: int) -> tuple[list[Buffer], int]:
    """Cut up to `budget` bytes off the front of `parts` as DATA frames.

    Returns the frames' buffers (header, payload views, header, ...) and the
    payload bytes taken. Payload is sliced, never copied; `parts` keeps the rest.
    """
    out: list[Buffer] = []
    taken = 0
    while parts and taken < budget:
        need = size = min(max_frame, budget - taken)
        header_at = len(out)
        out.append(b"")
        while need and parts:
            head = parts[0]
            if len(head) <= need:
                out.append(parts.popleft())
                need -= len(head)
            else:
                view = memoryview(head)
                out.append(view[:need])
                parts[0] = view[need:]
                need = 0
        out[header_at] = data_frame_header(size - need, stream_id)
        taken += size - need
    return out, taken


def frame(message: bytes) -> bytes:
    """Frame `message` as a gRPC length-prefixed message, uncompressed."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


class InlineCall(Protocol):
    """One call of an InlineMethod."""

    def on_messages(self, messages: list[bytes]) -> None:
        """Raw request messages, in the reading thread: must be quick and never block."""

    def on_end(self) -> None:
        """The daemon ended its side of the call, or the call is gone."""

    def responses(self) -> Iterator[Any]:
        """The response stream, iterated in the call's own thread."""


if TYPE_CHECKING:
    _HandlerBase = grpc.RpcMethodHandler[Any, Any]
else:
    _HandlerBase = grpc.RpcMethodHandler


class InlineMethod(_HandlerBase):
    """A bidi-streaming method whose requests are taken where they arrive.

    A stock handler reads its requests from an iterator in a thread of its own:
    one thread hand-over (futex calls, a GIL switch) per batch of requests.
    FileSync gets one REQ packet per file, thousands per second, and only ever
    queues them for its response stream; it takes them in the reading thread.
    `start(context)` runs in the reading thread too and may `context.abort()`.
    """

    def __init__(self, start: Callable[[Any], InlineCall]) -> None:
        self.start = start
        self.request_streaming = self.response_streaming = True
        self.request_deserializer = self.response_serializer = None
        self.unary_unary = self.unary_stream = self.stream_unary = self.stream_stream = None


class AbortError(Exception):
    """`RpcStream.abort`: ends the RPC with a status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class RpcStream:
    """One RPC: request metadata, queued request messages, flow-control accounting."""

    def __init__(self, stream_id: int, headers: list[tuple[str, str]]) -> None:
        self.id = stream_id
        self.headers = headers
        self.path = dict(headers).get(":path", "")
        self.inbox: queue.Queue[object] = queue.Queue()
        self.partial = bytearray()
        self.unacked = 0
        self.closed = False
        self.sink: InlineCall | None = None
        self.pending: list[bytes] = []  # for the sink, not yet handed over
        self.callbacks: list[Callable[[], None]] = []

    def invocation_metadata(self) -> list[tuple[str, str]]:
        """Request headers except HTTP/2 pseudo-headers (repeated keys kept)."""
        return [(k, v) for k, v in self.headers if not k.startswith(":")]

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        """End the RPC with a status."""
        raise AbortError(code, details)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run callback when the RPC ends."""
        self.callbacks.append(callback)
        return True

    def messages(self, data: bytes) -> list[bytes]:
        """Split received bytes into whole gRPC messages."""
        self.partial += data
        out = []
        while len(self.partial) >= 5:
            size = int.from_bytes(self.partial[1:5], "big")
            if len(self.partial) < 5 + size:
                break
            out.append(bytes(self.partial[5 : 5 + size]))
            del self.partial[: 5 + size]
        return out

"""Serve the session's gRPC services over the Control.Session byte stream, with h2.

Inside a session buildkitd is the HTTP/2 client and we are the server. We speak
HTTP/2 directly on the Session stream (no loopback socket, no second gRPC
stack): incoming BytesMessage payloads feed an h2 connection; whatever it has to
send is drained, coalesced, into outgoing BytesMessages. gRPC framing is done
here, so a handler may hand over many messages at once (`Framed`) and the
thousands of small packets of a context listing leave in a few large frames,
where a stock gRPC server pays a full round trip per message. DATA frames are
built here too (h2 keeps the flow-control accounting): payload is sliced, not
copied, until the one copy into the outgoing Session message.

Handlers are grpc.RpcMethodHandler objects (unary-unary or stream-stream), called
with a small context offering invocation_metadata(), abort() and add_callback().
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

from kubectl_build.buildkit.session.h2stream import (
    END,
    AbortError,
    Framed,
    InlineCall,
    InlineMethod,
    RpcStream,
    data_frame_header,
    frame,
    take_data_frames,
)
from kubectl_build.buildkit.wire import Buffer, join_bytes_message

__all__ = ["Framed", "H2Server", "InlineCall", "InlineMethod", "RpcStream", "data_frame_header", "frame",
           "take_data_frames"]

# Largest BytesMessage we send on the Session stream (the daemon accepts 16 MiB).
MAX_CHUNK = 4 << 20
WINDOW = (1 << 31) - 1 - 65535
_WAKING_EVENTS = (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged,
                  h2.events.StreamReset, h2.events.ConnectionTerminated)




def _data_frame_body_repr(frame: hyperframe.frame.DataFrame) -> str:
    return f"<{len(frame.data)} bytes>"


# h2 formats every frame it receives for its trace log, whether or not anything logs, and
# hyperframe shows a DATA frame by serialising its payload again and hex-encoding all of
# it: for a 500 MB cache export that was a quarter of the client's CPU.
hyperframe.frame.DataFrame._body_repr = _data_frame_body_repr  # type: ignore[method-assign,assignment]


@dataclass
class _Outbox:
    """Whole HTTP/2 frames to send, drained by the Session request iterator.

    A deque of buffers rather than one growing buffer: taking from the front of
    a bytearray moves everything behind it, megabytes per message under load.
    Each outgoing message joins its buffers once.
    """

    chunks_: deque[Buffer] = field(default_factory=deque)
    size: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False

    def put(self, data: bytes) -> None:
        if data:
            self.extend([data])

    def extend(self, buffers: list[Buffer]) -> None:
        size = sum(map(len, buffers))
        with self.cond:
            self.chunks_.extend(buffers)
            self.size += size
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def chunks(self) -> Iterator[bytes]:
        while True:
            with self.cond:
                while not self.chunks_ and not self.closed:
                    self.cond.wait()
                if not self.chunks_:
                    return
                parts: list[Buffer] = []
                taken = 0
                while self.chunks_ and taken < MAX_CHUNK:
                    part = self.chunks_.popleft()
                    parts.append(part)
                    taken += len(part)
                self.size -= taken
            yield join_bytes_message(parts, taken)


class H2Server:
    """An HTTP/2 gRPC server whose transport is the Session call's byte stream."""

    def __init__(self, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
        self.handlers = dict(handlers)
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.lock = threading.Condition()
        self.outbox = _Outbox()
        self.streams: dict[int, RpcStream] = {}
        self.error: BaseException | None = None
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 << 20,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: (1 << 24) - 1,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
        })
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(WINDOW)
        self._flush()

    def requests(self) -> Iterator[bytes]:
        """Raw BytesMessage frames for the Session call (our side of the stream)."""
        return self.outbox.chunks()

    def close(self) -> None:
        """Say goodbye and end our side of the stream."""
        with self.lock:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.conn.close_connection()
            self._flush()
            for stream in self.streams.values():
                self._end_stream(stream)
            self.lock.notify_all()
        self.outbox.close()

    def _flush(self) -> None:
        self.outbox.put(self.conn.data_to_send())

    # -- the reading side -------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Process bytes that arrived from the daemon."""
        with self.lock:
            events = self.conn.receive_data(data)
            for event in events:
                self._dispatch(event)
            for stream in self.streams.values():
                self._deliver(stream)
            self._flush()
            # Wake senders waiting for window only when it may have changed.
            if any(isinstance(e, _WAKING_EVENTS) for e in events):
                self.lock.notify_all()

    def _dispatch(self, event: object) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = [(str(k), str(v)) for k, v in event.headers or []]
            self._start(event.stream_id, headers)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                return
            messages = stream.messages(event.data or b"")
            stream.unacked += event.flow_controlled_length
            if stream.sink is not None:
                # Handed over once per feed (see _deliver): one wake-up of the
                # consumer for everything that came in, not one per frame.
                stream.pending += messages
                return
            # One hand-over per frame, not per message: a frame can hold several.
            if messages:
                stream.inbox.put(messages)
        elif isinstance(event, h2.events.StreamEnded):
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.inbox.put(END)
                if stream.sink is not None:
                    self._deliver(stream)
                    stream.sink.on_end()
        elif isinstance(event, h2.events.StreamReset):
            if (stream := self.streams.pop(event.stream_id, None)) is not None:
                self._end_stream(stream)
        elif isinstance(event, h2.events.ConnectionTerminated):
            for stream in list(self.streams.values()):
                self._end_stream(stream)

    def _end_stream(self, stream: RpcStream) -> None:
        stream.closed = True
        stream.inbox.put(END)
        if stream.sink is not None:
            self._deliver(stream)
            stream.sink.on_end()

    def _deliver(self, stream: RpcStream) -> None:
        """Hand an inline call what arrived for it, and give the window back at once."""
        if stream.sink is None:
            return
        if stream.unacked:
            # the stream is closing: nothing to give back
            with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
                self.conn.acknowledge_received_data(stream.unacked, stream.id)
            stream.unacked = 0
        if stream.pending:
            messages, stream.pending = stream.pending, []
            stream.sink.on_messages(messages)

    def _start(self, stream_id: int, headers: list[tuple[str, str]]) -> None:
        stream = RpcStream(stream_id, headers)
        handler = self.handlers.get(stream.path)
        if handler is None:
            self._trailers_only(stream_id, grpc.StatusCode.UNIMPLEMENTED, "unknown method")
            return
        if isinstance(handler, InlineMethod):
            try:
                stream.sink = handler.start(stream)
            except AbortError as abort:
                self._trailers_only(stream_id, abort.code, abort.details)
                return
        self.streams[stream_id] = stream
        threading.Thread(target=self._serve, args=(stream, handler), daemon=True,
                         name=f"kb-rpc-{stream_id}").start()

    def _trailers_only(self, stream_id: int, code: grpc.StatusCode, details: str) -> None:
        self.conn.send_headers(stream_id, [
            (":status", "200"), ("content-type", "application/grpc"),
            ("grpc-status", str(code.value[0])), ("grpc-message", details),
        ], end_stream=True)

    # -- one RPC ----------------------------------------------------------------

    def _incoming(self, stream: RpcStream,
                  deserialize: Callable[[bytes], Any] | None) -> Iterator[Any]:
        while True:
            item = stream.inbox.get()
            if item is END:
                return
            with self.lock:
                if stream.unacked and not stream.closed:
                    with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
                        self.conn.acknowledge_received_data(stream.unacked, stream.id)
                    stream.unacked = 0
                    self._flush()
            assert isinstance(item, list)
            for message in item:
                yield message if deserialize is None else deserialize(message)

    def _serve(self, stream: RpcStream, handler: grpc.RpcMethodHandler[Any, Any]) -> None:
        code, details = grpc.StatusCode.OK, ""
        started = False
        try:
            requests = self._incoming(stream, handler.request_deserializer)
            serialize = handler.response_serializer or (lambda b: b)
            context: Any = stream  # duck-types the parts of grpc.ServicerContext we use
            if stream.sink is not None:
                for item in stream.sink.responses():
                    started = self._send_item(stream, item, serialize, started)
            elif handler.request_streaming and handler.response_streaming:
                assert handler.stream_stream is not None
                for item in handler.stream_stream(requests, context):
                    started = self._send_item(stream, item, serialize, started)
            elif handler.response_streaming:
                assert handler.unary_stream is not None
                request = next(iter(requests), None)
                for item in handler.unary_stream(request, context):
                    started = self._send_item(stream, item, serialize, started)
            else:
                assert handler.unary_unary is not None
                request = next(iter(requests), None)
                response = handler.unary_unary(request, context)
                started = self._send_item(stream, response, serialize, started)
        except AbortError as abort:
            code, details = abort.code, abort.details
        except (h2.exceptions.StreamClosedError, _StreamGoneError):
            code = grpc.StatusCode.CANCELLED
        except Exception as err:  # noqa: BLE001 - reported to the daemon as the RPC status
            code, details = grpc.StatusCode.UNKNOWN, f"{type(err).__name__}: {err}"
        finally:
            for callback in stream.callbacks:
                callback()
        self._finish(stream, started, code, details)

    def _send_item(self, stream: RpcStream, item: Any, serialize: Callable[[Any], bytes],
                   started: bool) -> bool:
        parts = item.parts if isinstance(item, Framed) else (frame(serialize(item)),)
        with self.lock:
            if not started:
                self._check(stream)
                self.conn.send_headers(stream.id, [(":status", "200"),
                                                   ("content-type", "application/grpc")])
        self._send_data(stream, deque(p for p in parts if p))
        return True

    def _check(self, stream: RpcStream) -> None:
        if stream.closed:
            raise _StreamGoneError()

    def _send_data(self, stream: RpcStream, parts: deque[Buffer]) -> None:
        # DATA frames are built here rather than by h2: h2 copies every frame
        # twice and costs ~25 us per 16 KiB frame, most of the CPU of a large
        # upload. h2 stays in charge of the flow-control windows: they are
        # read from it and charged to it for what we send.
        while parts:
            with self.lock:
                while True:
                    self._check(stream)
                    h2_stream = self.conn.streams.get(stream.id)
                    if h2_stream is None or h2_stream.closed:
                        raise _StreamGoneError()
                    window = self.conn.local_flow_control_window(stream.id)
                    if window > 0:
                        break
                    self.lock.wait(1.0)
                frames, taken = take_data_frames(parts, stream.id, window,
                                                 self.conn.max_outbound_frame_size)
                self.conn.outbound_flow_control_window -= taken
                h2_stream.outbound_flow_control_window -= taken
                self._flush()  # whatever h2 queued before (headers) goes first
                self.outbox.extend(frames)

    def _finish(self, stream: RpcStream, started: bool, code: grpc.StatusCode, details: str) -> None:
        with self.lock:
            self.streams.pop(stream.id, None)
            if stream.closed:
                return
            try:
                if not started:
                    self._trailers_only(stream.id, code, details)
                else:
                    trailers = [("grpc-status", str(code.value[0]))]
                    if details:
                        trailers.append(("grpc-message", details))
                    self.conn.send_headers(stream.id, trailers, end_stream=True)
            except h2.exceptions.ProtocolError:
                pass
            self._flush()


class _StreamGoneError(Exception):
    """The daemon reset or closed the stream while we were answering."""

"""The session's HTTP/2 server, driven by a real h2 client connection (no daemon)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import hyperframe.frame
import pytest

from kubectl_build.buildkit.session import h2server
from kubectl_build.buildkit.session.h2server import (
    Framed,
    H2Server,
    InlineMethod,
    data_frame_header,
    frame,
    take_data_frames,
)
from kubectl_build.buildkit.wire import Buffer, decode_bytes_message


def _parse_frames(blob: bytes) -> list[hyperframe.frame.Frame]:
    frames = []
    while blob:
        header, length = hyperframe.frame.Frame.parse_frame_header(memoryview(blob[:9]))
        header.parse_body(memoryview(blob[9 : 9 + length]))
        frames.append(header)
        blob = blob[9 + length :]
    return frames


def test_data_frame_header_is_http2_data_frame() -> None:
    parsed, length = hyperframe.frame.Frame.parse_frame_header(
        memoryview(data_frame_header(16384, 7)))
    assert isinstance(parsed, hyperframe.frame.DataFrame)
    assert (length, parsed.stream_id, set(parsed.flags)) == (16384, 7, set())


def test_take_data_frames_cuts_across_parts_within_budget_and_frame_size() -> None:
    parts: deque[Buffer] = deque([b"a" * 10, b"b" * 25, b"c" * 3])
    out, taken = take_data_frames(parts, 3, budget=30, max_frame=16)
    assert taken == 30
    frames = _parse_frames(b"".join(out))
    assert [len(f.data) for f in frames] == [16, 14]
    assert all(f.stream_id == 3 and not f.flags for f in frames)
    assert b"".join(f.data for f in frames) == b"a" * 10 + b"b" * 20
    # The rest stays queued, starting exactly where the budget ran out.
    assert b"".join(bytes(p) for p in parts) == b"b" * 5 + b"c" * 3
    out, taken = take_data_frames(parts, 3, budget=100, max_frame=16)
    assert taken == 8 and not parts
    assert [f.data for f in _parse_frames(b"".join(out))] == [b"b" * 5 + b"c" * 3]


def test_take_data_frames_slices_without_copying() -> None:
    payload = bytes(range(256)) * 64
    parts: deque[Buffer] = deque([payload])
    out, taken = take_data_frames(parts, 1, budget=len(payload), max_frame=4096)
    assert taken == len(payload)
    views = [b for b in out if isinstance(b, memoryview)]
    assert len(views) == 4 and all(v.obj is payload for v in views)


class _Client:
    """The daemon's side: an h2 client talking to the server through its outbox."""

    def __init__(self, server: H2Server, window: int = 65535) -> None:
        self.server = server
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.events: list[h2.events.Event] = []
        self.data: dict[int, bytearray] = {}
        self.send()

    def send(self) -> None:
        if data := self.conn.data_to_send():
            self.server.feed(data)

    def receive(self) -> None:
        """Take what the server has queued so far (whole BytesMessages)."""
        outbox = self.server.outbox
        with outbox.cond:
            chunks = list(outbox.chunks_)
            outbox.chunks_.clear()
        if chunks:
            for event in self.conn.receive_data(b"".join(bytes(c) for c in chunks)):
                self.events.append(event)
                if isinstance(event, h2.events.DataReceived):
                    self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
            self.send()

    def call(self, path: str, *messages: bytes, end: bool = True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [(":method", "POST"), (":scheme", "http"),
                                           (":path", path), (":authority", "x"),
                                           ("content-type", "application/grpc"),
                                           ("dir-name", "ctx")])
        if messages:
            self.conn.send_data(stream_id, b"".join(frame(m) for m in messages))
        if end:
            self.conn.end_stream(stream_id)
        self.send()
        return stream_id

    def trailers(self, stream_id: int) -> dict[str, str] | None:
        for event in self.events:
            if isinstance(event, h2.events.TrailersReceived | h2.events.ResponseReceived) \
                    and event.stream_id == stream_id and event.stream_ended is not None:
                return {k.decode(): v.decode() for k, v in event.headers or []}
        return None

    def wait(self, done: Callable[[], bool]) -> None:
        """Take what the server sends until done() holds; fails after 10 s without."""
        deadline = time.monotonic() + 10
        outbox = self.server.outbox
        while True:
            self.receive()
            if done():
                return
            remaining = deadline - time.monotonic()
            assert remaining > 0, "timed out"
            with outbox.cond:
                outbox.cond.wait_for(lambda: bool(outbox.chunks_), timeout=remaining)


def _wait_finished(server: H2Server, stream_id: int) -> None:
    """Wait until the server sent the stream's trailers (it forgets the stream, then flushes)."""
    with server.outbox.cond:
        assert server.outbox.cond.wait_for(lambda: stream_id not in server.streams, timeout=5)
    with server.lock:  # held from forgetting the stream to queueing its trailers
        pass


def _handler(responses: Callable[[], Iterator[Any]]) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.stream_stream_rpc_method_handler(lambda requests, context: responses(),
                                                 response_serializer=lambda b: b)


def test_large_response_waits_for_window_and_arrives_intact() -> None:
    payload = bytes(range(251)) * 2000  # 502 KB, far beyond the 64 KiB window
    server = H2Server({"/s/Big": _handler(lambda: iter([Framed((frame(payload),))]))})
    client = _Client(server)
    stream_id = client.call("/s/Big")
    client.wait(lambda: len(client.data.get(stream_id, b"")) >= 65535)
    # Only the initial window went out: the stream's window is spent, so h2 would refuse
    # another byte until a WINDOW_UPDATE, and none has been sent.
    with server.lock:
        assert server.conn.local_flow_control_window(stream_id) == 0
    client.receive()
    assert len(client.data[stream_id]) == 65535
    assert all(len(e.data) <= 16384 for e in client.events
               if isinstance(e, h2.events.DataReceived))

    def consumed() -> bool:
        got = client.data.get(stream_id, b"")
        if got:  # give back what arrived, as the daemon does
            events = [e for e in client.events if isinstance(e, h2.events.DataReceived)]
            for event in events:
                client.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            client.events = [e for e in client.events
                             if not isinstance(e, h2.events.DataReceived)]
            client.send()
        return client.trailers(stream_id) is not None

    client.wait(consumed)
    assert bytes(client.data[stream_id]) == frame(payload)
    assert client.trailers(stream_id) == {"grpc-status": "0"}


def test_unknown_method_is_unimplemented() -> None:
    server = H2Server({})
    client = _Client(server)
    stream_id = client.call("/nope/Nope")
    client.wait(lambda: client.trailers(stream_id) is not None)
    assert (client.trailers(stream_id) or {})["grpc-status"] == str(
        grpc.StatusCode.UNIMPLEMENTED.value[0])


class _Echo:
    """An InlineCall that answers after the requests ended, recording its threads."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.calls: list[str] = []
        self.threads: set[str] = set()
        self.ended = threading.Event()

    def on_messages(self, messages: list[bytes]) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls.append("messages")
        self.got += messages

    def on_end(self) -> None:
        self.calls.append("end")
        self.ended.set()

    def responses(self) -> Iterator[Framed]:
        assert self.ended.wait(5)
        yield Framed(tuple(frame(m.upper()) for m in self.got))


def test_inline_method_takes_requests_in_the_reading_thread() -> None:
    echo = _Echo()
    server = H2Server({"/s/Echo": InlineMethod(lambda context: echo)})
    client = _Client(server)
    feeding = threading.current_thread().name
    stream_id = client.call("/s/Echo", b"one", b"two", b"three")
    client.wait(lambda: client.trailers(stream_id) is not None)
    assert echo.got == [b"one", b"two", b"three"]
    assert echo.threads == {feeding}
    # Messages and end arrived in one feed: handed over in one batch, then the end.
    assert echo.calls == ["messages", "end"]
    assert bytes(client.data[stream_id]) == b"".join(frame(m) for m in (b"ONE", b"TWO", b"THREE"))
    assert client.trailers(stream_id) == {"grpc-status": "0"}


def test_inline_method_start_may_abort() -> None:
    def start(context: Any) -> _Echo:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such dir")
        raise AssertionError("abort returns")

    server = H2Server({"/s/Echo": InlineMethod(start)})
    client = _Client(server)
    stream_id = client.call("/s/Echo", b"x")
    client.wait(lambda: client.trailers(stream_id) is not None)
    trailers = client.trailers(stream_id) or {}
    assert trailers["grpc-status"] == str(grpc.StatusCode.NOT_FOUND.value[0])
    assert trailers["grpc-message"] == "no such dir"


def test_outgoing_messages_are_bounded_bytes_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h2server, "MAX_CHUNK", 50_000)
    payload = b"z" * 300_000
    finished = threading.Event()

    def responses() -> Iterator[Framed]:
        yield Framed((frame(payload),))
        finished.set()

    server = H2Server({"/s/Big": _handler(responses)})
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    client.increment_flow_control_window(1 << 20)
    client.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/s/Big"),
                            (":authority", "x")], end_stream=True)
    server.feed(client.data_to_send())
    assert finished.wait(5)
    _wait_finished(server, 1)  # the trailers follow the last item
    server.close()
    messages = list(server.requests())
    raw = [decode_bytes_message(m) for m in messages]
    assert all(len(r) <= 50_000 + 16_384 + 9 for r in raw)
    assert len(messages) > 300_000 // 66_000
    events = client.receive_data(b"".join(raw))
    data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert data == frame(payload)
    assert any(isinstance(e, h2.events.TrailersReceived) for e in events)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])

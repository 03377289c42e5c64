"""An in-process fake buildkitd: the Control service on a unix socket, scripted per test.

Enough of Control to drive the client's whole solve path: Info, ListWorkers, Solve (answer,
fail or block until cancelled), Status (scripted progress, optionally "no such job" first)
and Session (the stream is accepted, its headers recorded, and held until the client ends
it). Every call is recorded; every wait is bounded.

It stands in for the daemon only in unit tests of the client and the job runner; the
end-to-end suite runs against the test bed's real buildkitd.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from kubectl_build._proto import control_pb2, control_pb2_grpc

WAIT = 10.0
"""Seconds any wait of the fake (or of a test on it) may take before it counts as a hang."""

Solver = Callable[[control_pb2.SolveRequest, grpc.ServicerContext], control_pb2.SolveResponse]


@dataclass
class SessionRecord:
    """One Control.Session stream as the fake saw it."""

    headers: dict[str, list[str]]
    """Its metadata, every value of each key (grpc-method repeats)."""
    ended: threading.Event = field(default_factory=threading.Event)
    """Set once the client ended its side."""

    def methods(self) -> list[str]:
        """The session methods the client exposed (``/moby.filesync.v1.FileSync/DiffCopy``...)."""
        return self.headers.get("x-docker-expose-session-grpc-method", [])


@dataclass
class SolveRecord:
    """One Solve call."""

    request: control_pb2.SolveRequest
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the client cancelled the call."""
    done: threading.Event = field(default_factory=threading.Event)
    """Set when the fake answered (or the call ended)."""


def answer(exporter_response: Mapping[str, str]) -> Solver:
    """A solve that succeeds at once with this exporter response."""
    def solve(request: control_pb2.SolveRequest, context: grpc.ServicerContext) -> control_pb2.SolveResponse:
        return control_pb2.SolveResponse(exporter_response=dict(exporter_response))
    return solve


def fail(code: grpc.StatusCode, details: str) -> Solver:
    """A solve that fails with this status, as the daemon reports a failed build."""
    def solve(request: control_pb2.SolveRequest, context: grpc.ServicerContext) -> control_pb2.SolveResponse:
        context.abort(code, details)
        raise AssertionError("abort returned")  # abort raises; keeps the type checker honest
    return solve


def step(name: str, *, error: str = "", done: bool = True) -> control_pb2.StatusResponse:
    """A progress update: one vertex named ``name`` started (and completed, or failed)."""
    now = Timestamp()
    now.GetCurrentTime()
    vertex = control_pb2.Vertex(digest=f"sha256:{uuid.uuid5(uuid.NAMESPACE_OID, name).hex}",
                                name=name, started=now, error=error)
    if done:
        vertex.completed.CopyFrom(now)
    return control_pb2.StatusResponse(vertexes=[vertex])


class FakeBuildkitd(control_pb2_grpc.ControlServicer):
    """The scripted daemon. Set ``solver``, ``updates``, ``platforms`` before the call."""

    def __init__(self, socket_path: Path) -> None:
        """Serve on ``socket_path`` (its directory must exist; keep the path short)."""
        self.address = f"unix://{socket_path}"
        self.version = "v0.34.2"
        self.platforms: Sequence[tuple[str, str, str]] = (("linux", "amd64", ""),)
        self.solver: Solver = answer({"containerimage.digest": "sha256:" + "0" * 64})
        self.updates: list[control_pb2.StatusResponse] = []
        self.unknown_job_first = False
        self.solves: list[SolveRecord] = []
        self.sessions: list[SessionRecord] = []
        self.solve_started = threading.Event()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        control_pb2_grpc.add_ControlServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self._server.add_insecure_port(f"unix:{socket_path}")
        self._server.start()

    def stop(self) -> None:
        """Stop serving; calls in flight are cancelled."""
        self._server.stop(grace=None)

    def block_until_cancelled(self) -> None:
        """Make every later solve hang until the client cancels it (bounded by WAIT)."""
        def solve(request: control_pb2.SolveRequest,
                  context: grpc.ServicerContext) -> control_pb2.SolveResponse:
            record = self.solves[-1]
            context.add_callback(record.cancelled.set)
            record.cancelled.wait(WAIT)
            return control_pb2.SolveResponse()
        self.solver = solve

    # ------------------------------------------------------------------ Control

    def Info(self, request: control_pb2.InfoRequest,  # noqa: N802
             context: grpc.ServicerContext) -> control_pb2.InfoResponse:
        return control_pb2.InfoResponse(buildkit_version=control_pb2.BuildkitVersion(
            package="github.com/moby/buildkit", version=self.version))

    def ListWorkers(self, request: control_pb2.ListWorkersRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> control_pb2.ListWorkersResponse:
        platforms = [control_pb2.Platform(os=os_, architecture=arch, variant=variant)
                     for os_, arch, variant in self.platforms]
        return control_pb2.ListWorkersResponse(record=[control_pb2.WorkerRecord(
            id="fake", platforms=platforms)])

    def Solve(self, request: control_pb2.SolveRequest,  # noqa: N802
              context: grpc.ServicerContext) -> control_pb2.SolveResponse:
        record = SolveRecord(request)
        with self._arrived:
            self.solves.append(record)
            self._arrived.notify_all()
        self.solve_started.set()
        try:
            return self.solver(request, context)
        finally:
            record.done.set()

    def Status(self, request: control_pb2.StatusRequest,  # noqa: N802
               context: grpc.ServicerContext) -> Iterator[control_pb2.StatusResponse]:
        if self.unknown_job_first:
            self.unknown_job_first = False
            context.abort(grpc.StatusCode.NOT_FOUND, f"no such job {request.ref}")
        yield from self.updates
        record = self._solve_of(request.ref)
        if record is not None:
            record.done.wait(WAIT)  # the daemon ends the stream when the build is done

    def Session(self, request_iterator: Iterator[Any],  # noqa: N802
                context: grpc.ServicerContext) -> Iterator[Any]:
        headers: dict[str, list[str]] = {}
        for key, value in context.invocation_metadata():
            headers.setdefault(key, []).append(str(value))
        record = SessionRecord(headers)
        with self._lock:
            self.sessions.append(record)
        for _ in request_iterator:  # held open until the client ends its side
            pass
        record.ended.set()
        return
        yield  # a generator: the stream answers nothing

    def _solve_of(self, ref: str) -> SolveRecord | None:
        """The Solve call for ``ref``, waiting (bounded) for it to arrive."""
        def found() -> SolveRecord | None:
            return next((s for s in self.solves if s.request.ref == ref), None)

        with self._arrived:
            self._arrived.wait_for(lambda: found() is not None, WAIT)
            return found()

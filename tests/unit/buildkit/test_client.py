"""The Control client against an in-process fake buildkitd: solve, status, cancel, failures."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubectl_build._proto import control_pb2, control_pb2_grpc
from kubectl_build.buildkit import client as client_mod
from kubectl_build.buildkit.client import BuildKitClient, parse_address
from kubectl_build.errors import (
    BuildFailedError,
    BuildInterruptedError,
    DaemonUnreachableError,
    KubectlBuildError,
    RegistryAuthError,
)

WAIT = 10.0
Updates = Iterator[control_pb2.StatusResponse]


class FakeControl(control_pb2_grpc.ControlServicer):
    """Solve and Status as the test sets them; everything else unimplemented."""

    def __init__(self) -> None:
        self.solve: Callable[[control_pb2.SolveRequest, Any], control_pb2.SolveResponse] = \
            lambda request, context: control_pb2.SolveResponse(exporter_response={"ref": request.ref})
        self.status_answers: list[Callable[[Any], Updates]] = []
        self.status_calls = 0
        self.cancelled = threading.Event()

    def Solve(self, request: control_pb2.SolveRequest, context: Any) -> control_pb2.SolveResponse:  # noqa: N802
        return self.solve(request, context)

    def Status(self, request: control_pb2.StatusRequest, context: Any) -> Updates:  # noqa: N802
        self.status_calls += 1
        answer = self.status_answers.pop(0) if self.status_answers else (lambda c: iter(()))
        yield from answer(context)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[FakeControl, BuildKitClient]]:
    servicer = FakeControl()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    control_pb2_grpc.add_ControlServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    socket = tmp_path / "buildkitd.sock"
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    client = BuildKitClient(parse_address(f"unix://{socket}"))
    try:
        yield servicer, client
    finally:
        client.close()
        server.stop(grace=None)


def _result(call: client_mod.SolveCall) -> control_pb2.SolveResponse:
    response = call.result(WAIT)
    assert response is not None, "no answer from the fake daemon"
    return response


def test_a_solve_answers_with_the_exporter_response(fake: tuple[FakeControl, BuildKitClient]) -> None:
    _, client = fake
    call = client.start_solve(control_pb2.SolveRequest(ref="r1"))
    assert dict(_result(call).exporter_response) == {"ref": "r1"}


def test_a_pending_solve_is_none_until_cancelled_then_interrupted(
        fake: tuple[FakeControl, BuildKitClient]) -> None:
    servicer, client = fake
    entered = threading.Event()

    def hang(request: control_pb2.SolveRequest, context: Any) -> control_pb2.SolveResponse:
        context.add_callback(servicer.cancelled.set)
        entered.set()
        servicer.cancelled.wait(WAIT)
        return control_pb2.SolveResponse()

    servicer.solve = hang
    call = client.start_solve(control_pb2.SolveRequest(ref="r2"))
    assert entered.wait(WAIT)
    assert call.result(0.01) is None
    call.cancel()
    assert servicer.cancelled.wait(WAIT), "the daemon never saw the cancellation"
    with pytest.raises(BuildInterruptedError, match="build cancelled"):
        call.result(WAIT)


def _abort(code: grpc.StatusCode, details: str) -> Callable[[control_pb2.SolveRequest, Any], Any]:
    def solve(request: control_pb2.SolveRequest, context: Any) -> Any:
        context.abort(code, details)

    return solve


def test_a_failed_step_is_a_build_failure_with_its_exit_code(
        fake: tuple[FakeControl, BuildKitClient]) -> None:
    servicer, client = fake
    servicer.solve = _abort(grpc.StatusCode.UNKNOWN, 'process "/bin/sh -c false" did not complete '
                            "successfully: exit code: 3")
    with pytest.raises(BuildFailedError, match="build failed: process") as caught:
        client.start_solve(control_pb2.SolveRequest(ref="r3")).result(WAIT)
    assert caught.value.step_exit_code == 3


def test_a_refused_push_is_a_registry_auth_error(fake: tuple[FakeControl, BuildKitClient]) -> None:
    servicer, client = fake
    servicer.solve = _abort(grpc.StatusCode.UNKNOWN, "failed to push https://reg.example/v2/x: "
                            "401 Unauthorized")
    with pytest.raises(RegistryAuthError, match="refused the credentials by reg.example"):
        client.start_solve(control_pb2.SolveRequest(ref="r4")).result(WAIT)


def test_a_lost_daemon_during_the_solve_is_unreachable(fake: tuple[FakeControl, BuildKitClient]) -> None:
    servicer, client = fake
    servicer.solve = _abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
    with pytest.raises(DaemonUnreachableError, match="lost the connection to buildkitd"):
        client.start_solve(control_pb2.SolveRequest(ref="r5")).result(WAIT)


def _updates(*names: str) -> Callable[[Any], Updates]:
    def answer(context: Any) -> Updates:
        for name in names:
            yield control_pb2.StatusResponse(vertexes=[control_pb2.Vertex(digest=name, name=name)])

    return answer


def _status_abort(code: grpc.StatusCode, details: str) -> Callable[[Any], Updates]:
    def answer(context: Any) -> Updates:
        context.abort(code, details)
        yield from ()

    return answer


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "STATUS_RETRY_PAUSE", 0.0)


def _names(stream: Updates) -> list[str]:
    return [vertex.name for response in stream for vertex in response.vertexes]


@pytest.mark.usefixtures("no_pause")
def test_status_asks_again_once_for_a_job_not_registered_yet(
        fake: tuple[FakeControl, BuildKitClient]) -> None:
    servicer, client = fake
    servicer.status_answers = [_status_abort(grpc.StatusCode.NOT_FOUND, "no such job r6"), _updates("a", "b")]
    assert _names(client.follow_status("r6")) == ["a", "b"]
    assert servicer.status_calls == 2


@pytest.mark.usefixtures("no_pause")
def test_status_gives_up_on_a_job_still_unknown(fake: tuple[FakeControl, BuildKitClient]) -> None:
    servicer, client = fake
    servicer.status_answers = [_status_abort(grpc.StatusCode.NOT_FOUND, "no such job r7")] * 2
    with pytest.raises(KubectlBuildError, match="buildkitd status failed: no such job r7"):
        _names(client.follow_status("r7"))
    assert servicer.status_calls == 2


@pytest.mark.usefixtures("no_pause")
def test_status_does_not_retry_other_failures(fake: tuple[FakeControl, BuildKitClient]) -> None:
    servicer, client = fake
    servicer.status_answers = [_status_abort(grpc.StatusCode.UNAVAILABLE, "gone"), _updates("never")]
    with pytest.raises(DaemonUnreachableError, match="cannot reach buildkitd"):
        _names(client.follow_status("r8"))
    assert servicer.status_calls == 1

"""Translating buildkitd's gRPC failures into the project's errors (kubectl_build.buildkit.errors)."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from kubectl_build._proto import rpcstatus_pb2
from kubectl_build.buildkit.errors import is_unknown_job, solve_failure, translate, translate_solve
from kubectl_build.errors import (
    BuildFailedError,
    DaemonUnreachableError,
    ExitCode,
    KubectlBuildError,
    RegistryAuthError,
    RegistryError,
)

ADDRESS = "unix:///run/buildkit/buildkitd.sock"
DOCKERFILE = b"FROM busybox\nCOPY . /src\nRUN make test\n"


class _RpcError(grpc.RpcError):
    """What grpcio raises for a failed call: code, details, trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str,
                 trailers: tuple[tuple[str, str | bytes], ...] = ()) -> None:
        super().__init__(details)
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailers


def _with_source(message: str, line: int, data: bytes = DOCKERFILE) -> _RpcError:
    source = {"info": {"filename": "Dockerfile.cross", "data": base64.b64encode(data).decode()},
              "ranges": [{"start": {"line": line}, "end": {"line": line}}]}
    status = rpcstatus_pb2.Status(code=2, message=message, details=[
        rpcstatus_pb2.Any(type_url="type.googleapis.com/moby.buildkit.v1.errdefs.Vertex",
                          value=b"{}"),
        rpcstatus_pb2.Any(type_url="github.com/moby/buildkit/errdefs.Source+json",
                          value=json.dumps(source).encode()),
    ])
    return _RpcError(grpc.StatusCode.UNKNOWN, message,
                     (("content-type", "application/grpc"),
                      ("grpc-status-details-bin", status.SerializeToString())))


def test_a_failed_run_names_its_dockerfile_line_and_exit_code() -> None:
    message = ('process "/bin/sh -c make test" did not complete successfully: exit code: 2\n'
               "more detail")
    err = translate_solve(_with_source(message, 3), ADDRESS)
    assert isinstance(err, BuildFailedError)
    assert err.message == ('build failed: process "/bin/sh -c make test" did not complete '
                           "successfully: exit code: 2 at Dockerfile.cross:3 `RUN make test`")
    assert err.step_exit_code == 2
    assert err.exit_code == ExitCode.BUILD_FAILED


def test_source_details_that_do_not_parse_are_ignored() -> None:
    status = rpcstatus_pb2.Status(details=[rpcstatus_pb2.Any(
        type_url="errdefs.Source+json", value=b"not json")])
    err = _RpcError(grpc.StatusCode.UNKNOWN, "boom",
                    (("grpc-status-details-bin", status.SerializeToString()),))
    assert solve_failure(err).source is None
    no_ranges = _with_source("boom", 0)
    assert solve_failure(no_ranges).source is not None  # a range, but line 0: no text
    assert translate_solve(no_ranges, ADDRESS).message == "build failed: boom"


def test_a_line_beyond_the_file_keeps_the_location_without_text() -> None:
    failure = solve_failure(_with_source("boom", 9))
    assert failure.source is not None
    assert (failure.source.filename, failure.source.line, failure.source.text) == (
        "Dockerfile.cross", 9, "")
    assert failure.exit_code is None


@pytest.mark.parametrize("message", [
    "failed to push reg.example.com/a:1: unexpected status from POST request to "
    "https://reg.example.com/v2/a/blobs/uploads/: 401 Unauthorized",
    "failed to authorize: failed to fetch oauth token: https://reg.example.com/token/: "
    "denied: requested access to the resource is denied",
    "insufficient_scope: authorization failed",
])
def test_refused_credentials_are_a_registry_auth_error(message: str) -> None:
    err = translate_solve(_RpcError(grpc.StatusCode.UNKNOWN, message), ADDRESS)
    assert isinstance(err, RegistryAuthError)
    assert err.message.startswith("registry refused the credentials")
    assert "reg.example.com" in err.message or "https://" not in message
    assert err.exit_code == ExitCode.REGISTRY_AUTH


def test_an_unreachable_registry_is_a_registry_error() -> None:
    message = ("failed to push 127.0.0.1:5999/a:1: failed to do request: Head "
               '"https://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused')
    err = translate_solve(_RpcError(grpc.StatusCode.UNKNOWN, message), ADDRESS)
    assert type(err) is RegistryError
    assert err.message == f"push failed: {message}"
    assert err.hint == "check the registry address and that it is up"


def test_losing_the_daemon_mid_build_says_so() -> None:
    err = translate(_RpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed"), ADDRESS, "solve")
    assert isinstance(err, DaemonUnreachableError)
    assert err.message == f"lost the connection to buildkitd at {ADDRESS} during the build (Socket closed)"


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_an_unreachable_daemon_outside_a_solve(code: grpc.StatusCode) -> None:
    err = translate(_RpcError(code, "failed to connect to all addresses\nsecond line"), ADDRESS,
                    "list workers")
    assert isinstance(err, DaemonUnreachableError)
    assert err.message == f"cannot reach buildkitd at {ADDRESS} (failed to connect to all addresses)"
    assert "BUILDKIT_HOST" in (err.hint or "")
    assert err.exit_code == ExitCode.DAEMON_UNREACHABLE


def test_other_failures_name_the_action() -> None:
    err = translate(_RpcError(grpc.StatusCode.PERMISSION_DENIED, "not allowed"), ADDRESS, "prune")
    assert type(err) is KubectlBuildError
    assert err.message == "buildkitd prune failed: not allowed"
    bare = translate(_RpcError(grpc.StatusCode.INTERNAL, ""), ADDRESS, "prune")
    assert bare.message == "buildkitd prune failed: StatusCode.INTERNAL"


def test_unknown_job_is_recognised_by_its_details() -> None:
    assert is_unknown_job(_RpcError(grpc.StatusCode.NOT_FOUND, "no such job abc123"))
    assert not is_unknown_job(_RpcError(grpc.StatusCode.NOT_FOUND, "no such file"))

"""The Control API of buildkitd: one channel, typed calls, errors translated here.

Nothing outside ``buildkit/`` sees a grpc object: a Solve in flight is a `SolveCall`, its
progress an iterator of StatusResponse, and every failure a KubectlBuildError made by
``buildkit.errors``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from kubectl_build._proto import control_pb2, control_pb2_grpc, gateway_pb2, gateway_pb2_grpc, rpcstatus_pb2
from kubectl_build.buildkit.errors import is_unknown_job, translate, translate_solve
from kubectl_build.buildkit.wire import identity
from kubectl_build.errors import BuildInterruptedError, DaemonUnreachableError, UsageError

MAX_MESSAGE = 16 << 20
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    # BuildKit puts JSON stack traces into grpc-status-details-bin; with the
    # default 8 KiB limit the real error is replaced by RESOURCE_EXHAUSTED.
    ("grpc.max_metadata_size", 1 << 20),
    ("grpc.absolute_max_metadata_size", 1 << 20),
    # A dead daemon (or pod) must end the build within seconds, never hang.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
STATUS_RETRY_PAUSE = 0.5
"""Seconds before asking again for the status of a job the daemon did not know yet."""
BUILD_ID_HEADER = "buildkit-controlapi-buildid"
"""Names the build a frontend gateway call belongs to."""


@dataclass(frozen=True)
class TLSConfig:
    """Client TLS material for tcp:// daemons."""

    ca_cert: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """Where buildkitd listens, in grpc target form."""

    address: str
    target: str
    secure: bool


def parse_address(address: str, tls: TLSConfig | None = None) -> Endpoint:
    """Turn unix:///path or tcp://host:port into a grpc target."""
    if address.startswith("unix://"):
        path = address[len("unix://") :]
        return Endpoint(address, f"unix:{path}", False)
    if address.startswith("tcp://"):
        hostport = address[len("tcp://") :].rstrip("/")
        if ":" not in hostport:
            raise UsageError(f"buildkit host {address!r} has no port", "use tcp://HOST:PORT")
        secure = bool(tls and (tls.ca_cert or tls.cert))
        return Endpoint(address, hostport, secure)
    raise UsageError(
        f"unsupported buildkit host {address!r}",
        "use unix:///path/to/buildkitd.sock or tcp://HOST:PORT",
    )


def _credentials(tls: TLSConfig) -> grpc.ChannelCredentials:
    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    try:
        return grpc.ssl_channel_credentials(read(tls.ca_cert), read(tls.key), read(tls.cert))
    except OSError as err:
        raise UsageError(f"cannot read TLS file: {err}", "check --tlscacert/--tlscert/--tlskey") \
            from err


class BuildKitClient:
    """Typed access to buildkitd's Control service."""

    def __init__(self, endpoint: Endpoint, tls: TLSConfig | None = None) -> None:
        self.endpoint = endpoint
        options = list(CHANNEL_OPTIONS)
        if endpoint.secure and tls is not None:
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            self._channel = grpc.secure_channel(endpoint.target, _credentials(tls), options)
        else:
            self._channel = grpc.insecure_channel(endpoint.target, options)
        self._stub = control_pb2_grpc.ControlStub(self._channel)
        self._gateway = gateway_pb2_grpc.LLBBridgeStub(self._channel)
        self._session = self._channel.stream_stream(
            "/moby.buildkit.v1.Control/Session",
            request_serializer=identity,
            response_deserializer=identity,
        )

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> BuildKitClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float) -> None:
        """Wait until the channel connects, or fail with a clear error."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as err:
            raise DaemonUnreachableError(
                f"cannot reach buildkitd at {self.endpoint.address} within {timeout:.0f}s",
                "check that buildkitd is running and --buildkit-host/BUILDKIT_HOST points at it",
            ) from err

    def _call(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as err:
            raise translate(err, self.endpoint.address, action) from err

    def info(self, timeout: float = 30) -> control_pb2.InfoResponse:
        """The daemon's version."""
        req = control_pb2.InfoRequest()
        return self._call("info", self._stub.Info, req, timeout=timeout)  # type: ignore[no-any-return]

    def list_workers(self, timeout: float = 30) -> Sequence[control_pb2.WorkerRecord]:
        """Workers with their platforms (native and emulated)."""
        req = control_pb2.ListWorkersRequest()
        resp = self._call("list-workers", self._stub.ListWorkers, req, timeout=timeout)
        return list(resp.record)

    def disk_usage(self, timeout: float = 60) -> Sequence[control_pb2.UsageRecord]:
        """Build cache records."""
        req = control_pb2.DiskUsageRequest()
        resp = self._call("disk-usage", self._stub.DiskUsage, req, timeout=timeout)
        return list(resp.record)

    def prune(self, request: control_pb2.PruneRequest,
              timeout: float = 600) -> list[control_pb2.UsageRecord]:
        """Prune the build cache; returns what was removed."""
        def run() -> list[control_pb2.UsageRecord]:
            return list(self._stub.Prune(request, timeout=timeout))
        return self._call("prune", run)  # type: ignore[no-any-return]

    def start_solve(self, request: control_pb2.SolveRequest) -> SolveCall:
        """Send a Solve; the answer (or the translated failure) comes from the returned call."""
        return SolveCall(self._stub.Solve.future(request), self.endpoint.address)

    def follow_status(self, ref: str) -> Iterator[control_pb2.StatusResponse]:
        """Progress of the build `ref`, until the daemon ends it (the build is done).

        Status can race Solve registering the job: the daemon waits a few seconds for it,
        so one retry after a short pause covers a slow start.

        Raises:
            KubectlBuildError: The stream failed otherwise (DaemonUnreachableError when
                the connection went). A caller following a solve may ignore it: the
                solve's own result carries the real cause.
        """
        for attempt in range(2):
            try:
                yield from self._stub.Status(control_pb2.StatusRequest(ref=ref))
                return
            except grpc.RpcError as err:
                if attempt or not is_unknown_job(err):
                    raise translate(err, self.endpoint.address, "status") from err
            time.sleep(STATUS_RETRY_PAUSE)

    def frontend_call(self, ref: str, frontend: str, attrs: Mapping[str, str],
                      timeout: float = 600) -> dict[str, bytes]:
        """Run a frontend subrequest in the build ``ref``, then end that build.

        A Solve without frontend holds the build open; the answer is result metadata.

        Raises:
            BuildFailedError etc.: the frontend failed (``errors.translate_solve``).
        """
        header = ((BUILD_ID_HEADER, ref),)
        request = gateway_pb2.SolveRequest(frontend=frontend, frontend_opt=dict(attrs),
                                           allow_result_return=True, allow_result_array_ref=True)
        try:
            response = self._gateway.Solve(request, metadata=header, timeout=timeout)
        except grpc.RpcError as err:
            with contextlib.suppress(grpc.RpcError):
                failed = gateway_pb2.ReturnRequest(
                    error=rpcstatus_pb2.Status(code=2, message="subrequest failed"))
                self._gateway.Return(failed, metadata=header, timeout=30)
            raise translate_solve(err, self.endpoint.address) from err
        # An empty result: the answer is ours; the build exports nothing.
        self._call("return", self._gateway.Return, gateway_pb2.ReturnRequest(result=gateway_pb2.Result()),
                   metadata=header, timeout=30)
        return dict(response.result.metadata)

    def open_session(self, requests: Iterator[bytes],
                     metadata: Sequence[tuple[str, str]]) -> Any:
        """Open Control.Session: raw BytesMessage frames both ways."""
        return self._session(requests, metadata=tuple(metadata))


class SolveCall:
    """A Solve in flight: wait for its answer in slices (to notice Ctrl-C), or cancel it."""

    def __init__(self, future: grpc.Future[Any], address: str) -> None:
        self._future = future
        self._address = address

    def result(self, timeout: float) -> control_pb2.SolveResponse | None:
        """The daemon's answer, or None when it has not come within `timeout` seconds.

        Raises:
            BuildFailedError, RegistryAuthError, RegistryError, DaemonUnreachableError:
                The solve failed (``errors.translate_solve``).
            BuildInterruptedError: The call was cancelled (see `cancel`).
        """
        try:
            return self._future.result(timeout=timeout)  # type: ignore[no-any-return]
        except grpc.FutureTimeoutError:
            return None
        except grpc.FutureCancelledError as err:
            raise BuildInterruptedError("build cancelled", "the daemon stopped the build") from err
        except grpc.RpcError as err:
            raise translate_solve(err, self._address) from err

    def cancel(self) -> None:
        """Cancel the solve: the daemon stops the build; idempotent."""
        self._future.cancel()

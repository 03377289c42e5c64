"""A recording gRPC proxy in front of buildkitd: what a client really asks for.

Any client (buildx through its remote driver, our CLI through --buildkit-host) talks to
the proxy's unix socket; every call is forwarded byte for byte to the daemon, and the
requests of Control.Solve and LLBBridge.Solve are kept, decoded with our own protos. In
``record_only`` mode a solve is refused once recorded (nothing is built), for
command lines whose outputs and registries do not exist here.

Every method is forwarded as a stream-stream call: unary and streaming calls look the
same on the wire, so the proxy needs no list of methods.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from kubectl_build._proto import control_pb2, gateway_pb2

SOLVE = "/moby.buildkit.v1.Control/Solve"
GATEWAY_SOLVE = "/moby.buildkit.v1.frontend.LLBBridge/Solve"
RECORDED = "recorded by the test proxy; not built"
# Headers grpcio sets itself on the forwarded call.
_OWN_HEADERS = {"user-agent", "grpc-accept-encoding", "grpc-encoding", "te", "content-type"}


@dataclass
class Recording:
    """The solve requests seen since the last ``take``."""

    control: list[control_pb2.SolveRequest] = field(default_factory=list)
    gateway: list[gateway_pb2.SolveRequest] = field(default_factory=list)


def _identity(data: bytes) -> bytes:
    return data


class RecordingProxy(grpc.GenericRpcHandler):
    """Serves ``socket`` and forwards to ``upstream`` (a grpc target such as unix:/path)."""

    def __init__(self, socket: str, upstream: str) -> None:
        self.record_only = False
        self._lock = threading.Lock()
        self._recording = Recording()
        self._upstream = grpc.insecure_channel(upstream, options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_metadata_size", 1 << 20)])
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                                   handlers=[self],
                                   options=[("grpc.max_receive_message_length", 64 << 20),
                                            ("grpc.max_send_message_length", 64 << 20),
                                            ("grpc.max_metadata_size", 1 << 20)])
        self._server.add_insecure_port(f"unix:{socket}")
        self.address = f"unix://{socket}"

    def start(self) -> RecordingProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait(5)
        self._upstream.close()

    def take(self) -> Recording:
        """What was recorded, forgetting it."""
        with self._lock:
            taken, self._recording = self._recording, Recording()
        return taken

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        return grpc.stream_stream_rpc_method_handler(
            lambda requests, context: self._forward(method, requests, context),
            request_deserializer=_identity, response_serializer=_identity)

    def _forward(self, method: str, requests: Iterator[bytes],
                 context: grpc.ServicerContext) -> Iterator[bytes]:
        if method in (SOLVE, GATEWAY_SOLVE):
            first = next(requests)
            holds_gateway = self._record(method, first)
            # A Solve that only holds a gateway build open goes through: the frontend
            # attributes come in the gateway Solve that follows it.
            if self.record_only and not holds_gateway:
                context.abort(grpc.StatusCode.UNAVAILABLE, RECORDED)
            requests = _chain(first, requests)
        metadata = [(k, v) for k, v in context.invocation_metadata()
                    if k not in _OWN_HEADERS and not k.startswith(":")]
        call = self._upstream.stream_stream(method, request_serializer=_identity,
                                            response_deserializer=_identity)
        remaining = context.time_remaining()  # huge when the caller set no deadline
        upstream = call(requests, metadata=metadata,
                        timeout=remaining if remaining is not None and remaining < 1e6 else None)
        context.add_callback(upstream.cancel)
        try:
            context.send_initial_metadata(upstream.initial_metadata())
            yield from upstream
            context.set_trailing_metadata(upstream.trailing_metadata() or ())
        except grpc.RpcError as err:
            context.set_trailing_metadata(err.trailing_metadata() or ())  # type: ignore[attr-defined]
            context.abort(err.code(), err.details() or "")  # type: ignore[attr-defined]

    def _record(self, method: str, data: bytes) -> bool:
        """Keep a request; whether it is a Control.Solve holding a gateway build."""
        with self._lock:
            if method == SOLVE:
                solve = control_pb2.SolveRequest.FromString(data)
                self._recording.control.append(solve)
                return not solve.frontend and not solve.definition
            self._recording.gateway.append(gateway_pb2.SolveRequest.FromString(data))
            return False


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest

"""grpc.health.v1.Health: the daemon drops the session at the first failed check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from kubectl_build.buildkit.wire import identity

# HealthCheckResponse{status: SERVING}, pre-encoded: this must never queue behind
# anything or allocate much, it is called every 5 s for the whole build.
SERVING = b"\x08\x01"


class HealthService:
    """Always SERVING."""

    name = "grpc.health.v1.Health"

    def handlers(self) -> Mapping[str, grpc.RpcMethodHandler[Any, Any]]:
        """Method name → handler."""
        return {
            "Check": grpc.unary_unary_rpc_method_handler(
                lambda _req, _ctx: SERVING,
                request_deserializer=identity,
                response_serializer=identity,
            )
        }

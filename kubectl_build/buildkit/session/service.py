"""What every session service provides: its methods, as gRPC handlers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import grpc


class SessionService(Protocol):
    """A service our client serves to the daemon inside the session."""

    name: str  # full service name, e.g. "moby.filesync.v1.FileSync"

    def handlers(self) -> Mapping[str, grpc.RpcMethodHandler[Any, Any]]:
        """Method name → handler."""
        ...


def method_paths(service: SessionService) -> list[str]:
    """The `/<service>/<method>` paths to advertise in the session headers."""
    return [f"/{service.name}/{method}" for method in service.handlers()]


def metadata_values(context: grpc.ServicerContext, key: str) -> list[str]:
    """All values of a (possibly repeated, possibly -encoded) request metadata key."""
    from urllib.parse import unquote_plus

    pairs = context.invocation_metadata() or ()
    values = [str(v) for k, v in pairs if k == key]
    encoded = any(k == f"{key}-encoded" and v == "1" for k, v in pairs)
    return [unquote_plus(v) for v in values] if encoded else values

"""One BuildKit session: our services, exposed to the daemon for one build."""

from __future__ import annotations

import secrets
import string
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
import h2.exceptions

from kubectl_build.buildkit.client import BuildKitClient
from kubectl_build.buildkit.session.h2server import H2Server
from kubectl_build.buildkit.session.health import HealthService
from kubectl_build.buildkit.session.service import SessionService, method_paths
from kubectl_build.buildkit.wire import decode_bytes_message

_ALPHABET = string.ascii_lowercase + string.digits


def new_id() -> str:
    """A random 25-character base36 id, like the Go client's."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(25))


class Session:
    """Session id, shared key and services; `open()` serves them over the daemon link."""

    def __init__(self, services: Sequence[SessionService], shared_key: str = "") -> None:
        self.id = new_id()
        self.shared_key = shared_key
        self.services: list[SessionService] = [HealthService(), *services]

    def metadata(self) -> list[tuple[str, str]]:
        """Session headers: lower-case keys (grpcio rejects others), one per method."""
        headers = [
            ("x-docker-expose-session-uuid", self.id),
            ("x-docker-expose-session-name", "kubectl-build"),
            ("x-docker-expose-session-sharedkey", self.shared_key),
        ]
        for service in self.services:
            headers += [("x-docker-expose-session-grpc-method", p) for p in method_paths(service)]
        return headers

    @contextmanager
    def open(self, client: BuildKitClient) -> Iterator[Session]:
        """Serve the session for the duration of the block (open it before Solve)."""
        handlers = {f"/{svc.name}/{method}": handler
                    for svc in self.services for method, handler in svc.handlers().items()}
        server = H2Server(handlers)
        call = client.open_session(server.requests(), self.metadata())
        reader = threading.Thread(target=_read, args=(call, server), name="kb-session-read",
                                  daemon=True)
        reader.start()
        try:
            yield self
        finally:
            server.close()  # ends our side: the daemon then ends the call
            reader.join(5)
            call.cancel()


def _read(call: Any, server: H2Server) -> None:
    """Feed everything the daemon sends on the Session stream into the h2 server."""
    try:
        for message in call:
            data = decode_bytes_message(message)
            if data:
                server.feed(data)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.CANCELLED:
            server.error = err
    except h2.exceptions.ProtocolError as err:
        server.error = err
    finally:
        server.close()

"""One BuildKit session: our services, exposed to the daemon for one build."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from kubectl_build.buildkit.client import BuildKitClient
from kubectl_build.buildkit.session.health import HealthService
from kubectl_build.buildkit.session.service import SessionService, generic_handler, method_paths
from kubectl_build.buildkit.session.tunnel import BytePump, InnerServer, start_pump_thread

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
        server = InnerServer([generic_handler(s) for s in self.services],
                             workers=16 + 2 * len(self.services))
        try:
            pump = BytePump(server.connect())
            call = client.open_session(pump.requests(), self.metadata())
            start_pump_thread(pump, call)
            try:
                yield self
            finally:
                pump.close()
                call.cancel()
        finally:
            server.stop()

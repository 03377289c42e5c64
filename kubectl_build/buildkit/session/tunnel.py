"""Serve gRPC to the daemon over the Control.Session byte stream.

Inside a session the roles are reversed: buildkitd is the HTTP/2 client and we
are the server. grpcio cannot serve an arbitrary byte stream, so we run a normal
grpc.server on a private unix socket, open one connection to it, and pump bytes
between that connection and the Session call in both directions.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc

from kubectl_build.buildkit.wire import decode_bytes_message, encode_bytes_message

MAX_MESSAGE = 16 << 20
# The daemon's client allows 16 MiB messages; large socket reads keep the number
# of BytesMessage frames (and Python iterations) per megabyte low.
READ_SIZE = 1 << 20
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
]


class InnerServer:
    """A grpc.server on a private unix socket, reachable through one connection."""

    def __init__(self, handlers: Sequence[grpc.GenericRpcHandler[Any, Any]], workers: int = 16) -> None:
        self._dir = tempfile.mkdtemp(prefix="kb-session-")
        os.chmod(self._dir, 0o700)
        self.path = os.path.join(self._dir, "s.sock")
        # Every RPC holds a worker for its whole life (long transfers too), so the
        # pool must cover concurrent transfers plus health checks.
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kb-session"),
            handlers=list(handlers),
            options=SERVER_OPTIONS,
            maximum_concurrent_rpcs=None,
        )
        self._server.add_insecure_port(f"unix:{self.path}")
        self._server.start()

    def connect(self) -> socket.socket:
        """Open the one connection the daemon's HTTP/2 client will talk through."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        return sock

    def stop(self) -> None:
        """Stop serving and remove the private socket directory."""
        self._server.stop(grace=None)
        shutil.rmtree(self._dir, ignore_errors=True)


class BytePump:
    """Moves bytes between a local socket and a Control.Session call."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._done = threading.Event()
        self.error: BaseException | None = None

    def requests(self) -> Iterator[bytes]:
        """Socket → daemon: grpcio pulls this in its own thread (back-pressure)."""
        while True:
            try:
                chunk = self._sock.recv(READ_SIZE)
            except OSError:
                return
            if not chunk:
                return
            yield encode_bytes_message(chunk)

    def pump_responses(self, responses: Iterator[bytes]) -> None:
        """Daemon → socket, until the daemon ends the call."""
        try:
            for message in responses:
                data = decode_bytes_message(message)
                if data:
                    self._sock.sendall(data)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                self.error = err
        except OSError as err:
            self.error = err
        finally:
            self._done.set()
            _shutdown(self._sock, socket.SHUT_WR)

    def close(self, timeout: float = 5.0) -> None:
        """Half-close toward the daemon so it ends the Session call, then wait."""
        _shutdown(self._sock, socket.SHUT_RD)
        self._done.wait(timeout)
        self._sock.close()


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


def start_pump_thread(pump: BytePump, responses: Any) -> threading.Thread:
    """Run the daemon→socket direction in a daemon thread."""
    thread = threading.Thread(
        target=pump.pump_responses, args=(responses,), name="kb-session-pump", daemon=True
    )
    thread.start()
    return thread

"""What the CLI and its agent agree on: where the socket is, the request, the replies.

Imported by the thin client before anything else, so it uses only cheap modules.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

SWITCH = "KUBECTL_BUILD_AGENT"
"""0/off/false/no: never use or start an agent."""
FOLDER = "KUBECTL_BUILD_AGENT_DIR"
"""Where the agent's socket lives (default: $XDG_RUNTIME_DIR or /tmp, per user)."""
IDLE = "KUBECTL_BUILD_AGENT_IDLE"
"""Seconds without a request after which the agent exits."""
IDLE_SECONDS = 600.0
SERVE = "KUBECTL_BUILD_AGENT_SERVE"
"""Set to a socket path, the frozen release executable serves as the agent there (it has
no ``python -m``)."""

ACCEPTED = b"A"
"""The agent runs the build: from here on, the caller only waits for its code."""
REFUSED = b"R"
"""The agent will not run it (changed code, unusable directory): run it yourself."""
CODE = b"C"
"""Followed by the exit code as a signed 32-bit big-endian integer."""
INTERRUPT = b"I"
TERMINATE = b"T"
HANGUP = b"H"

MAX_REQUEST = 1 << 20
# Unix socket paths are limited to 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
# Variables a shell changes between two commands without changing what they do.
VOLATILE = frozenset({"_", "PWD", "OLDPWD", "SHLVL"})
_HEADER = struct.Struct(">I")
_CODE = struct.Struct(">i")


class Request(NamedTuple):
    """One `kubectl build` invocation, as the agent's copy must reproduce it."""

    argv: tuple[str, ...]
    cwd: str
    env: Mapping[str, str]
    umask: int
    encoding: str
    errors: str


def enabled(environ: Mapping[str, str]) -> bool:
    """Whether the agent may be used and started."""
    return environ.get(SWITCH, "").strip().lower() not in {"0", "off", "false", "no"}


def idle_seconds(environ: Mapping[str, str]) -> float:
    """The agent's idle lifetime (IDLE_SECONDS unless set to a positive number)."""
    try:
        value = float(environ.get(IDLE, ""))
    except ValueError:
        return IDLE_SECONDS
    return value if value > 0 else IDLE_SECONDS


def socket_path(environ: Mapping[str, str], executable: str = sys.executable) -> str:
    """The agent socket of this installation (interpreter and package) for this user."""
    folder = environ.get(FOLDER) or os.path.join(
        environ.get("XDG_RUNTIME_DIR") or "/tmp", f"kubectl-build-{os.getuid()}")
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tag = "%08x" % zlib.crc32(f"{executable}\n{package}".encode())  # noqa: UP031
    return os.path.join(folder, f"agent-{tag}.sock")


def wants_agent(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether this invocation is a build the agent can run.

    Help, version and completion answer faster here. A build on a standing buildkitd
    (--buildkit-host, BUILDKIT_HOST) has no exec to keep ready, but it saves the
    interpreter's start and the imports, most of a cached build's time.
    """
    options = list(argv[: list(argv).index("--")] if "--" in argv else argv)
    if not options or options in (["--help"], ["-h"]) or options[0] == "completion":
        return False
    if "--version" in options or environ.get("_KUBECTL_BUILD_COMPLETE"):
        return False
    return enabled(environ)


def env_digest(environ: Mapping[str, str]) -> str:
    """Digest of an environment, ignoring what a shell changes between commands."""
    import hashlib  # not needed by the thin client

    kept = sorted((k, v) for k, v in environ.items() if k not in VOLATILE)
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()


def encode_request(request: Request) -> bytes:
    """A request as sent: length, then JSON."""
    body = json.dumps({"argv": list(request.argv), "cwd": request.cwd, "env": dict(request.env),
                       "umask": request.umask, "encoding": request.encoding,
                       "errors": request.errors}).encode()
    return _HEADER.pack(len(body)) + body


def request_length(header: bytes) -> int:
    """The body length announced by a request's first four bytes."""
    (length,) = _HEADER.unpack(header)
    if length > MAX_REQUEST:
        raise ValueError(f"request of {length} bytes")
    return int(length)


def decode_request(body: bytes) -> Request:
    """A request from its JSON body; ValueError when it is not one."""
    doc = json.loads(body)
    argv, env = doc.get("argv"), doc.get("env")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a list of strings")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in env.items()):
        raise ValueError("env must map strings to strings")
    cwd, umask = doc.get("cwd"), doc.get("umask")
    encoding, errors = doc.get("encoding"), doc.get("errors")
    if not isinstance(cwd, str) or not isinstance(umask, int) or isinstance(umask, bool):
        raise ValueError("cwd and umask are required")
    if not isinstance(encoding, str) or not isinstance(errors, str):
        raise ValueError("encoding and errors are required")
    return Request(tuple(argv), cwd, env, umask, encoding, errors)


def encode_code(code: int) -> bytes:
    """The reply that ends a build."""
    return CODE + _CODE.pack(code)


def decode_code(payload: bytes) -> int:
    """The exit code in the four bytes after CODE."""
    (code,) = _CODE.unpack(payload)
    return int(code)

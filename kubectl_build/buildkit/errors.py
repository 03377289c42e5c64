"""Translate gRPC failures from buildkitd into the project's error types.

This is the only module that interprets grpc.RpcError for the Control API.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import grpc

from kubectl_build._proto import rpcstatus_pb2
from kubectl_build.errors import (
    BuildFailedError,
    DaemonUnreachableError,
    KubectlBuildError,
    RegistryAuthError,
    RegistryError,
)

_EXIT_CODE = re.compile(r"exit code: (\d+)")
_AUTH = re.compile(r"\b(401 Unauthorized|403 Forbidden|unauthorized|authorization failed|"
                   r"insufficient_scope|authentication required|denied: requested access)",
                   re.IGNORECASE)
_REGISTRY_HOST = re.compile(r"https?://([^/\s\"]+)/")


@dataclass(frozen=True)
class SourceLocation:
    """Where in the Dockerfile a failed step came from."""

    filename: str
    line: int
    text: str


@dataclass(frozen=True)
class SolveFailure:
    """What we could learn about a failed solve."""

    message: str
    exit_code: int | None = None
    source: SourceLocation | None = None


def _details(err: grpc.RpcError) -> list[tuple[str, bytes]]:
    trailers: Any = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = rpcstatus_pb2.Status.FromString(value)
            return [(d.type_url, d.value) for d in status.details]
    return []


def _source_from(value: bytes) -> SourceLocation | None:
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    info = doc.get("info") or doc.get("Info") or {}
    ranges = doc.get("ranges") or doc.get("Ranges") or []
    if not ranges:
        return None
    start = ranges[0].get("start") or ranges[0].get("Start") or {}
    line = int(start.get("line") or start.get("Line") or 0)
    text = ""
    data = info.get("data") or info.get("Data")
    if data and line > 0:
        import base64

        lines = base64.b64decode(data).decode("utf-8", "replace").splitlines()
        if line <= len(lines):
            text = lines[line - 1].strip()
    return SourceLocation(str(info.get("filename") or "Dockerfile"), line, text)


def solve_failure(err: grpc.RpcError) -> SolveFailure:
    """Extract the message, the failing command's exit code and the Dockerfile line."""
    message = err.details() or str(err.code())
    source = None
    for type_url, value in _details(err):
        if type_url.endswith("errdefs.Source+json") and source is None:
            source = _source_from(value)
    match = _EXIT_CODE.search(message)
    return SolveFailure(message, int(match.group(1)) if match else None, source)


def is_unknown_job(err: grpc.RpcError) -> bool:
    """Whether a Status call failed because the daemon has not registered the job (yet)."""
    return "no such job" in (err.details() or "")


def translate(err: grpc.RpcError, address: str, action: str) -> KubectlBuildError:
    """Map a gRPC error to a user-facing error with a hint."""
    code = err.code()
    details = err.details() or ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and \
            action != "solve":
        return DaemonUnreachableError(
            f"cannot reach buildkitd at {address} ({details.splitlines()[0] if details else code})",
            "check that buildkitd is running and --buildkit-host/BUILDKIT_HOST points at it",
        )
    if action == "solve":
        return translate_solve(err, address)
    return KubectlBuildError(f"buildkitd {action} failed: {details or code}")


def translate_solve(err: grpc.RpcError, address: str) -> KubectlBuildError:
    """Map a failed Solve to BuildFailed / RegistryAuth / Registry / DaemonUnreachable."""
    failure = solve_failure(err)
    first = failure.message.splitlines()[0] if failure.message else str(err.code())
    if err.code() == grpc.StatusCode.UNAVAILABLE:
        return DaemonUnreachableError(
            f"lost the connection to buildkitd at {address} during the build ({first})",
            "check the daemon's logs; rerun the build when it is back",
        )
    if _AUTH.search(failure.message):
        host = _REGISTRY_HOST.search(failure.message)
        where = f" by {host.group(1)}" if host else ""
        return RegistryAuthError(
            f"registry refused the credentials{where}: {first}",
            "check the registry credentials (docker config / registry secret) for that host",
        )
    if "failed to push" in failure.message or "failed to do request" in failure.message:
        return RegistryError(f"push failed: {first}", "check the registry address and that it is up")
    return BuildFailedError(_describe(failure, first), "see the failing step's log above",
                            step_exit_code=failure.exit_code)


def _describe(failure: SolveFailure, first: str) -> str:
    text = f"build failed: {first}"
    if failure.source and failure.source.line:
        where = f"{failure.source.filename}:{failure.source.line}"
        text += f" at {where}" + (f" `{failure.source.text}`" if failure.source.text else "")
    return text

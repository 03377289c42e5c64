"""moby.buildkit.secrets.v1.Secrets: `--secret id=X,src=FILE|env=VAR`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from kubectl_build._proto import secrets_pb2

MAX_SECRET = 500 * 1024


@dataclass(frozen=True)
class SecretSource:
    """Where a secret's value comes from; read only when the daemon asks."""

    file: str | None = None
    env: str | None = None

    def read(self) -> bytes | None:
        """The value, or None when absent."""
        if self.file is not None:
            with open(self.file, "rb") as fh:
                return fh.read(MAX_SECRET + 1)
        if self.env is not None:
            value = os.environ.get(self.env)
            return None if value is None else value.encode()
        return None


class SecretsService:
    """Serves secret values by id; unknown ids are NOT_FOUND."""

    name = "moby.buildkit.secrets.v1.Secrets"

    def __init__(self, sources: Mapping[str, SecretSource]) -> None:
        self.sources = dict(sources)

    def handlers(self) -> Mapping[str, grpc.RpcMethodHandler[Any, Any]]:
        """Method name → handler."""
        return {
            "GetSecret": grpc.unary_unary_rpc_method_handler(
                self.get_secret,
                request_deserializer=secrets_pb2.GetSecretRequest.FromString,
                response_serializer=secrets_pb2.GetSecretResponse.SerializeToString,
            )
        }

    def get_secret(self, request: secrets_pb2.GetSecretRequest,
                   context: grpc.ServicerContext) -> secrets_pb2.GetSecretResponse:
        """Read the secret now (never cached, never logged)."""
        source = self.sources.get(request.id)
        try:
            value = source.read() if source else None
        except OSError:
            value = None
        if value is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"secret {request.id} not found")
        assert value is not None
        if len(value) > MAX_SECRET:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"secret {request.id} too large")
        return secrets_pb2.GetSecretResponse(data=value)

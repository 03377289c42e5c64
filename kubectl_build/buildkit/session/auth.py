"""moby.filesync.v1.Auth: registry credentials served to the daemon.

Credentials come from a docker config.json-shaped document (a file, or later a
Kubernetes docker-registry Secret). Only Credentials is served; the token
authority methods stay unimplemented so the daemon fetches tokens itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from kubectl_build._proto import session_pb2
from kubectl_build.errors import KubectlBuildError, UsageError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"registry-1.docker.io", "docker.io", "index.docker.io", DOCKER_HUB_KEY}


@dataclass(frozen=True)
class Credential:
    """One registry login. Never printed: repr hides the secret."""

    username: str
    secret: str

    def __repr__(self) -> str:
        return f"Credential(username={self.username!r}, secret=<hidden>)"


def normalise_host(key: str) -> str:
    """The store's key for a registry: bare host[:port], Docker Hub's aliases as docker.io."""
    host = key.strip()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    host = host.split("/", 1)[0]
    return "docker.io" if host in _HUB_ALIASES or key in _HUB_ALIASES else host


def _entry_credential(entry: Mapping[str, object], source: str) -> Credential | None:
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credential("", token)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, _, password = base64.b64decode(auth).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as err:
            raise UsageError(f"malformed auth entry in {source}",
                             "recreate it with kubectl create secret docker-registry") from err
        return Credential(user, password)
    username, secret = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(secret, str):
        return Credential(username, secret)
    return None


class CredentialStore:
    """Host → credential, from docker config documents."""

    def __init__(self, creds: Mapping[str, Credential] | None = None) -> None:
        self._creds = dict(creds or {})

    @classmethod
    def from_config_json(cls, document: bytes, source: str, legacy: bool = False) -> CredentialStore:
        """Parse config.json (`{"auths": {...}}`) or legacy .dockercfg (`{host: {...}}`)."""
        try:
            doc = json.loads(document)
        except ValueError as err:
            raise UsageError(f"{source} is not valid JSON",
                             "recreate it with kubectl create secret docker-registry") from err
        auths: object = doc if legacy else doc.get("auths", {}) if isinstance(doc, dict) else None
        if not isinstance(auths, dict):
            raise UsageError(f"{source} has no auths map",
                             "recreate it with kubectl create secret docker-registry")
        creds: dict[str, Credential] = {}
        for key, entry in auths.items():
            if isinstance(entry, dict) and (cred := _entry_credential(entry, source)):
                creds[normalise_host(key)] = cred
        return cls(creds)

    def merged(self, other: CredentialStore) -> CredentialStore:
        """A store where `other` wins on conflicts."""
        return CredentialStore({**self._creds, **other._creds})

    def lookup(self, host: str) -> Credential | None:
        """Credential for a registry host as the daemon names it."""
        return self._creds.get(normalise_host(host))

    @property
    def hosts(self) -> list[str]:
        """Hosts we hold credentials for (for error messages; never the secrets)."""
        return sorted(self._creds)


class AuthService:
    """Serves Credentials; the daemon falls back to its own token flow."""

    name = "moby.filesync.v1.Auth"

    def __init__(self, store: CredentialStore) -> None:
        self.store = store
        self.asked: list[str] = []
        # The first lookup that failed (a credential helper missing or broken): the
        # daemon only sees a failed RPC, the build reports this instead.
        self.failure: KubectlBuildError | None = None

    def handlers(self) -> Mapping[str, grpc.RpcMethodHandler[Any, Any]]:
        """Method name → handler."""
        return {
            "Credentials": grpc.unary_unary_rpc_method_handler(
                self.credentials,
                request_deserializer=session_pb2.CredentialsRequest.FromString,
                response_serializer=session_pb2.CredentialsResponse.SerializeToString,
            )
        }

    def credentials(self, request: session_pb2.CredentialsRequest,
                    context: grpc.ServicerContext) -> session_pb2.CredentialsResponse:
        """Empty strings mean anonymous, which is not an error."""
        self.asked.append(request.host)
        try:
            cred = self.store.lookup(request.host)
        except KubectlBuildError as err:
            self.failure = self.failure or err
            context.abort(grpc.StatusCode.UNAUTHENTICATED, err.one_line())
        if cred is None:
            return session_pb2.CredentialsResponse()
        return session_pb2.CredentialsResponse(username=cred.username, secret=cred.secret)

"""A small OCI distribution client: read manifests and blobs, put manifests.

Used to read back what a build pushed and (for multi-builder builds) to push the
merged index. All registry HTTP goes through `RegistryClient._request`, which
owns authentication (basic, bearer token) and error translation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_build.buildkit.session.auth import Credential
from kubectl_build.errors import RegistryAuthError, RegistryError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
TIMEOUT = 60.0
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as stored: media type, exact bytes, digest."""

    media_type: str
    body: bytes
    digest: str

    def json(self) -> Any:
        """The parsed document."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Reference:
    """registry host, repository path, tag or digest."""

    host: str
    repository: str
    reference: str

    @classmethod
    def parse(cls, name: str) -> Reference:
        """Parse `host/repo[:tag|@digest]`; docker.io names get library/ and the hub host."""
        rest, ref = name, "latest"
        if "@" in rest:
            rest, ref = rest.split("@", 1)
        elif ":" in rest.rsplit("/", 1)[-1]:
            rest, ref = rest.rsplit(":", 1)
        first, _, path = rest.partition("/")
        if not path or ("." not in first and ":" not in first and first != "localhost"):
            first, path = "docker.io", rest
        if first == "docker.io" and "/" not in path:
            path = f"library/{path}"
        return cls(first, path, ref)


class RegistryClient:
    """Talks to one registry host."""

    def __init__(
        self,
        host: str,
        credential: Credential | None = None,
        *,
        ca_file: str | None = None,
        plain_http: bool = False,
        secret_name: str | None = None,
    ) -> None:
        self.host = "registry-1.docker.io" if host == "docker.io" else host
        self.credential = credential
        self.scheme = "http" if plain_http else "https"
        self.secret_name = secret_name
        self._ssl = ssl.create_default_context(cafile=ca_file) if not plain_http else None
        self._token: str | None = None

    def _auth_error(self, status: int) -> RegistryAuthError:
        tried = (
            f"credentials from {self.secret_name}"
            if self.secret_name
            else ("the configured credentials" if self.credential else "no credentials")
        )
        return RegistryAuthError(
            f"registry {self.host} answered {status} using {tried}",
            "check the username/password for that registry"
            + (f" in secret {self.secret_name}" if self.secret_name else ""),
        )

    def _basic(self) -> str | None:
        if self.credential is None:
            return None
        raw = f"{self.credential.username}:{self.credential.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _fetch_token(self, challenge: str) -> None:
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        if not realm:
            raise RegistryError(f"registry {self.host} sent a token challenge without realm")
        url = realm + "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url)
        if basic := self._basic():
            request.add_header("Authorization", basic)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT, context=self._ssl) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise self._auth_error(err.code) from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise RegistryError(f"token request to {realm} failed: {err}") from err
        self._token = doc.get("token") or doc.get("access_token")

    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        url = f"{self.scheme}://{self.host}{path}"
        for attempt in range(2):
            request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
            if self._token:
                request.add_header("Authorization", f"Bearer {self._token}")
            elif attempt and (basic := self._basic()):
                request.add_header("Authorization", basic)
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT, context=self._ssl) as resp:
                    return resp.status, dict(resp.headers), resp.read()
            except urllib.error.HTTPError as err:
                if err.code == 401 and attempt == 0:
                    challenge = err.headers.get("WWW-Authenticate", "")
                    if challenge.lower().startswith("bearer"):
                        self._fetch_token(challenge)
                    continue
                if err.code in (401, 403):
                    raise self._auth_error(err.code) from err
                raise RegistryError(f"{method} {url} failed: {err.code} {err.reason}") from err
            except (urllib.error.URLError, OSError) as err:
                raise RegistryError(
                    f"cannot reach registry {self.host}: {err}",
                    "check the registry address and that it is up",
                ) from err
        raise self._auth_error(401)

    def manifest(self, repository: str, reference: str) -> Manifest:
        """GET a manifest or index by tag or digest."""
        _, headers, body = self._request(
            "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT}
        )
        media_type = headers.get("Content-Type", "").split(";")[0] or json.loads(body).get(
            "mediaType", ""
        )
        return Manifest(media_type, body, "sha256:" + hashlib.sha256(body).hexdigest())

    def blob(self, repository: str, digest: str) -> bytes:
        """GET a blob (configs are small; layers are not read this way)."""
        return self._request("GET", f"/v2/{repository}/blobs/{digest}")[2]

    def mount_blob(self, repository: str, digest: str, source: str) -> None:
        """Make a blob of ``source`` (a repository of this registry) exist in ``repository``.

        Mounted without moving bytes where the registry allows it (201 Created); when it
        opens an upload instead (202 Accepted), the bytes are read from ``source`` and put.
        Layers are held in memory on that path.
        """
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        status, headers, _ = self._request("POST", f"/v2/{repository}/blobs/uploads/?{query}")
        if status == 201:
            return
        location = urllib.parse.urlsplit(headers.get("Location", ""))
        if not location.path:
            raise RegistryError(f"registry {self.host} opened an upload without a Location",
                                "check the registry; it does not follow the distribution API")
        data = self.blob(source, digest)
        query = f"{location.query}&" if location.query else ""
        self._request("PUT", f"{location.path}?{query}digest={urllib.parse.quote(digest)}",
                      headers={"Content-Type": "application/octet-stream"}, body=data)

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """PUT a manifest under a tag (or digest); returns its digest."""
        self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Content-Type": manifest.media_type},
            body=manifest.body,
        )
        return manifest.digest


def fetch_pushed(client: RegistryClient, repository: str,
                 digests: Sequence[str]) -> tuple[tuple[Manifest, ...], dict[str, bytes]]:
    """What builders pushed by digest, plus the config blobs of single image manifests.

    The configs give the platform of an image manifest that no index describes; merge the
    result with ``imageindex.merge_index``.

    Raises:
        RegistryError: a manifest is missing or its bytes do not match its digest.
    """
    manifests = []
    configs: dict[str, bytes] = {}
    for digest in digests:
        manifest = client.manifest(repository, digest)
        if manifest.digest != digest:
            raise RegistryError(f"{repository}@{digest} came back with digest {manifest.digest}",
                                "the registry changed the manifest; check its storage and proxies")
        manifests.append(manifest)
        if manifest.media_type in (OCI_MANIFEST, DOCKER_MANIFEST):
            config = manifest.json().get("config", {}).get("digest", "")
            configs[config] = client.blob(repository, config)
    return tuple(manifests), configs


def push_index(client: RegistryClient, repository: str, tags: Sequence[str],
               index: Manifest) -> str:
    """PUT ``index`` under every tag of ``repository``; returns its digest.

    Its children must already be in ``repository``: each builder pushed them there by digest.
    Without tags the index is put under its own digest, so it still exists in the registry.
    """
    for tag in tags or (index.digest,):
        client.put_manifest(repository, tag, index)
    return index.digest

"""The client-side merge of a multi-builder push.

Each builder pushed by digest: read every push back, merge them into one index, put it
under every tag.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence

from kubectl_build.buildkit.session.auth import CredentialStore
from kubectl_build.errors import RegistryAuthError, RegistryError
from kubectl_build.options.annotations import IndexAnnotations
from kubectl_build.registry.client import Manifest, RegistryClient, fetch_pushed, push_index
from kubectl_build.registry.index import merge_index, push_targets


def pushed_digest(response: Mapping[str, str], what: str) -> str:
    """The digest a builder pushed (its exporter response's ``containerimage.digest``).

    Raises:
        RegistryError: the builder reported none.
    """
    digest = response.get("containerimage.digest", "")
    if not digest.startswith("sha256:"):
        raise RegistryError(f"{what} reported no pushed digest",
                            "check that the builder's image exporter pushed")
    return digest


def merged_response(index: Manifest, names: Sequence[str]) -> dict[str, str]:
    """An exporter response for the merged index, as one multi-platform solve reports it."""
    descriptor = {"mediaType": index.media_type, "digest": index.digest, "size": len(index.body)}
    return {
        "containerimage.digest": index.digest,
        "containerimage.descriptor": base64.b64encode(json.dumps(descriptor).encode()).decode(),
        "image.name": ",".join(names),
    }


RegistryConnector = Callable[[str, bool], RegistryClient]
"""Makes a client for a registry host; the flag asks for plain HTTP."""

_CERT_DIRS = ("{docker}/certs.d", "~/.docker/certs.d", "/etc/docker/certs.d")


def registry_ca(host: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The CA of a registry as Docker finds it.

    ``certs.d/<host>/ca.crt`` under the docker config directory or /etc/docker; None means
    the system's trust store (SSL_CERT_FILE).
    """
    env = os.environ if environ is None else environ
    docker = env.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    for template in _CERT_DIRS:
        folder = os.path.expanduser(template.format(docker=docker))
        path = os.path.join(folder, host, "ca.crt")
        if os.path.isfile(path):
            return path
    return None


def is_loopback(host: str) -> bool:
    """Whether the registry is on this machine, where Docker allows plain HTTP too."""
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def speaks_tls(host: str, timeout: float = 5.0) -> bool:
    """Whether ``host[:port]`` answers a TLS handshake (a loopback registry may be plain HTTP)."""
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    address = (name or host, int(port) if port.isdigit() else 443)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asking whether it speaks TLS at all
    try:
        with socket.create_connection(address, timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=address[0]):
            return True
    except (ssl.SSLError, OSError):
        return False


def registry_connector(credentials: CredentialStore) -> RegistryConnector:
    """Clients with the build's registry credentials (the session's store)."""
    def connect(host: str, plain_http: bool) -> RegistryClient:
        return RegistryClient(host, credentials.lookup(host), ca_file=registry_ca(host),
                              plain_http=plain_http)
    return connect


def merge_and_push(digests: Sequence[str], names: Sequence[str], connect: RegistryConnector,
                   annotations: IndexAnnotations | None = None) -> Manifest:
    """Read back what every builder pushed, merge it, put the index under every tag.

    Args:
        digests: what each builder pushed by digest, in plan order.
        names: the image names (``-t``); every repository gets the index.
        connect: makes registry clients.
        annotations: what ``--annotation`` puts on the index and its image entries.

    Returns:
        The merged index (the same bytes in every repository).

    Raises:
        RegistryError: a registry cannot be reached or refuses; the merge is impossible.
    """
    index: Manifest | None = None
    for target in push_targets(names):
        client, (manifests, configs) = _fetch(connect, target.host, target.repository, digests)
        merged = merge_index(manifests, configs, annotations)
        push_index(client, target.repository, target.tags, merged)
        index = merged
    if index is None:
        raise RegistryError("nothing to push the merged index to", "tag the image with -t")
    return index


def _fetch(connect: RegistryConnector, host: str, repository: str, digests: Sequence[str]
           ) -> tuple[RegistryClient, tuple[tuple[Manifest, ...], dict[str, bytes]]]:
    client = connect(host, False)
    try:
        return client, fetch_pushed(client, repository, digests)
    except RegistryAuthError:
        raise
    except RegistryError as err:
        if not is_loopback(host):
            raise err.evolve(hint=f"the client pushes the merged index itself, so it must reach "
                             f"{host} (a custom CA goes in $DOCKER_CONFIG/certs.d/{host}/ca.crt)"
                             ) from err
        plain = connect(host, True)  # a local registry often speaks plain HTTP (Docker allows it)
        try:
            return plain, fetch_pushed(plain, repository, digests)
        except RegistryError:
            raise err from None

"""Read what a build pushed back through the registry API, and unpack layers."""

from __future__ import annotations

import gzip
import io
import tarfile
from typing import Any

from kubectl_build.buildkit.session.auth import Credential
from kubectl_build.registry.client import RegistryClient
from tests.e2e.helpers import Testbed


def tls_registry(testbed: Testbed) -> RegistryClient:
    cred = Credential(testbed.env["KB_REGISTRY_USER"], testbed.env["KB_REGISTRY_PASSWORD"])
    return RegistryClient(testbed.registry_tls, cred, ca_file=testbed.env["KB_REGISTRY_CA"])


def is_attestation(entry: dict[str, Any]) -> bool:
    """An attestation manifest of an index (BuildKit's provenance or SBOM), not an image."""
    return (entry.get("annotations") or {}).get("vnd.docker.reference.type") == "attestation-manifest"


def attested_digests(index: dict[str, Any]) -> set[str]:
    """The image digests the index's attestation manifests refer to."""
    return {entry["annotations"]["vnd.docker.reference.digest"]
            for entry in index["manifests"] if is_attestation(entry)}


def platforms_of(index: dict[str, object]) -> set[str]:
    """The platforms of the index's images (attestation manifests left out)."""
    result = set()
    for entry in index["manifests"]:  # type: ignore[attr-defined]
        if is_attestation(entry):
            continue
        plat = entry["platform"]
        result.add("/".join(p for p in (plat["os"], plat["architecture"],
                                         plat.get("variant", "")) if p))
    return result


def read_file_from_image(client: RegistryClient, repo: str, manifest_digest: str,
                         path: str) -> bytes:
    """Find `path` in the image's layers (last layer wins)."""
    manifest = client.manifest(repo, manifest_digest).json()
    found = None
    for layer in manifest["layers"]:
        blob = client.blob(repo, layer["digest"])
        data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                if member.name.lstrip("./") == path.lstrip("/"):
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        found = extracted.read()
    if found is None:
        raise AssertionError(f"{path} not found in {repo}@{manifest_digest}")
    return found

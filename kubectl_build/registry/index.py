"""Merge what several builders pushed by digest into one image index. Pure.

Each builder of a multi-node build pushes its platforms by digest (no tag): an index, or a
single image manifest when it built one platform without attestations. The client reads
those back (``registry.fetch_pushed``) and merges them here into one index, which
``registry.push_index`` then puts under every tag.

* The result is a Docker manifest list when every child is a Docker image manifest,
  else an OCI index; annotations exist only in OCI, so a Docker list carries none.
* Attestation manifests (platform ``unknown/unknown``, annotation
  ``vnd.docker.reference.type=attestation-manifest``) are kept; their
  ``vnd.docker.reference.digest`` names a child manifest, whose digest the merge does not
  change, so it still points at the right image.
* A single manifest gets its platform from its config blob (``os``, ``architecture``,
  ``variant``, ``os.version``, ``os.features``).
* Two images for one platform are an error: a registry client would pick one at random.
* Images come first, in the order given, then attestations: the layout BuildKit writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_build.errors import RegistryError
from kubectl_build.options.annotations import IndexAnnotations
from kubectl_build.platforms.matching import from_parts
from kubectl_build.registry.client import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    Reference,
)

REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION = "attestation-manifest"
IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
# Field order of the OCI/Docker Go structs, so the JSON reads as other tools write it.
_DESCRIPTOR_KEYS = ("mediaType", "artifactType", "digest", "size", "urls", "platform", "annotations")
_PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant", "features")
# Only these exist in a Docker manifest list's descriptors.
_DOCKER_KEYS = frozenset({"mediaType", "digest", "size", "urls", "platform"})

Descriptor = dict[str, Any]


class IndexMergeError(RegistryError):
    """The pushed results cannot be merged into one index."""


@dataclass(frozen=True)
class PushTarget:
    """One repository the merged index goes to, and its tags there."""

    host: str
    """Registry host (``docker.io`` for Docker Hub names)."""
    repository: str
    """Repository path on that host, e.g. ``team/app``."""
    tags: tuple[str, ...]
    """Tags to put the index under, in the order given; may be empty (digest only)."""

    @property
    def name(self) -> str:
        """``host/repository``: the image name without a tag."""
        return f"{self.host}/{self.repository}"


def push_targets(names: Sequence[str]) -> tuple[PushTarget, ...]:
    """Group image names (``-t`` values) by repository, in first-seen order.

    Names pinned by digest contribute their repository but no tag.
    """
    tags: dict[tuple[str, str], list[str]] = {}
    for name in names:
        ref = Reference.parse(name)
        found = tags.setdefault((ref.host, ref.repository), [])
        if not ref.reference.startswith("sha256:") and ref.reference not in found:
            found.append(ref.reference)
    return tuple(PushTarget(host, repo, tuple(found)) for (host, repo), found in tags.items())


def by_digest_attrs(attrs: Mapping[str, str]) -> dict[str, str]:
    """A pushing ``image`` exporter's attributes for one builder of a multi-builder build.

    Every builder pushes to every repository by digest, with no tag, so that the merged
    index's children already exist wherever it is put; tags are the client's job.
    """
    names = [name.strip() for name in attrs.get("name", "").split(",") if name.strip()]
    result = dict(attrs)
    result["name"] = ",".join(target.name for target in push_targets(names))
    result["push-by-digest"] = "true"
    result["push"] = "true"
    return result


def config_digest(manifest: Manifest) -> str | None:
    """The config blob to read for ``manifest``'s platform; None for an index."""
    if manifest.media_type not in IMAGE_MANIFESTS:
        return None
    digest = manifest.json().get("config", {}).get("digest")
    if not isinstance(digest, str):
        raise IndexMergeError(f"image manifest {manifest.digest} has no config digest")
    return digest


def merge_index(pushed: Sequence[Manifest], configs: Mapping[str, bytes],
                annotations: IndexAnnotations | None = None) -> Manifest:
    """One index holding every image and attestation of ``pushed``.

    Args:
        pushed: what each builder pushed, in plan order (indexes or image manifests).
        configs: config blobs by digest, for the image manifests in ``pushed``.
        annotations: ``--annotation`` values of the index and of its image entries.

    Returns:
        The merged index with its exact bytes and their sha256 digest.

    Raises:
        IndexMergeError: an unknown media type, a missing platform, a platform pushed
            twice, or an attestation naming an image that is not in the index.
    """
    descriptors = _unique_digests([d for m in pushed for d in _descriptors(m, configs)])
    images = [d for d in descriptors if not _is_attestation(d)]
    attestations = [d for d in descriptors if _is_attestation(d)]
    _check_platforms(images)
    _check_attestations(images, attestations)
    docker = all(d.get("mediaType") == DOCKER_MANIFEST for d in descriptors)
    media_type = DOCKER_LIST if docker else OCI_INDEX
    if annotations is not None:
        images = [_annotated(d, annotations.for_descriptor(d)) for d in images]
    entries = [_ordered(d, docker) for d in (*images, *attestations)]
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    if annotations is not None and annotations.index:
        document["annotations"] = dict(sorted(annotations.index.items()))
    body = json.dumps(document, indent=2).encode()
    return Manifest(media_type, body, "sha256:" + hashlib.sha256(body).hexdigest())


def _annotated(descriptor: Descriptor, extra: Mapping[str, str]) -> Descriptor:
    if not extra:
        return descriptor
    merged = {**(descriptor.get("annotations") or {}), **extra}
    return {**descriptor, "annotations": dict(sorted(merged.items()))}


def _descriptors(manifest: Manifest, configs: Mapping[str, bytes]) -> list[Descriptor]:
    if manifest.media_type in INDEXES:
        children = manifest.json().get("manifests") or []
        return [_child(dict(child), manifest.digest) for child in children]
    if manifest.media_type in IMAGE_MANIFESTS:
        digest = config_digest(manifest) or ""
        if digest not in configs:
            raise IndexMergeError(f"config {digest} of {manifest.digest} was not read")
        return [{"mediaType": manifest.media_type, "digest": manifest.digest,
                 "size": len(manifest.body), "platform": config_platform(configs[digest])}]
    raise IndexMergeError(f"{manifest.digest} has media type {manifest.media_type!r}, "
                          "not an image manifest or index")


def _child(child: Descriptor, parent: str) -> Descriptor:
    for key in ("mediaType", "digest", "size"):
        if key not in child:
            raise IndexMergeError(f"an entry of index {parent} has no {key}")
    if not isinstance(child.get("platform"), dict):
        raise IndexMergeError(f"manifest {child['digest']} in index {parent} has no platform")
    return child


def config_platform(config: bytes) -> dict[str, Any]:
    """The descriptor platform of an image config blob.

    Raises:
        IndexMergeError: the blob is not JSON or lacks ``os``/``architecture``.
    """
    try:
        doc = json.loads(config)
    except ValueError as err:
        raise IndexMergeError(f"an image config is not JSON: {err}") from err
    if not isinstance(doc, dict) or not doc.get("os") or not doc.get("architecture"):
        raise IndexMergeError("an image config names no os/architecture")
    return {key: doc[key] for key in _PLATFORM_KEYS if doc.get(key)}


def _is_attestation(descriptor: Descriptor) -> bool:
    annotations = descriptor.get("annotations") or {}
    platform = descriptor.get("platform") or {}
    return (annotations.get(REFERENCE_TYPE) == ATTESTATION
            or (platform.get("os"), platform.get("architecture")) == ("unknown", "unknown"))


def _unique_digests(descriptors: list[Descriptor]) -> list[Descriptor]:
    """Drop repeats of one digest: the same manifest pushed by two builders is one entry."""
    seen: dict[str, Descriptor] = {}
    for descriptor in descriptors:
        seen.setdefault(descriptor["digest"], descriptor)
    return list(seen.values())


def platform_key(platform: Mapping[str, Any]) -> str:
    """``linux/arm/v7`` (plus ``:os.version``), normalised so ``arm64/v8`` equals ``arm64``."""
    os_name, arch = str(platform.get("os", "")), str(platform.get("architecture", ""))
    variant = str(platform.get("variant", ""))
    normal = from_parts(os_name, arch, variant)
    text = str(normal) if normal else "/".join(p for p in (os_name, arch, variant) if p)
    version = platform.get("os.version")
    return f"{text}:{version}" if version else text


def _check_platforms(images: list[Descriptor]) -> None:
    seen: dict[str, str] = {}
    for image in images:
        key = platform_key(image["platform"])
        if key in seen:
            raise IndexMergeError(
                f"platform {key} was pushed twice ({seen[key]} and {image['digest']})",
                "each platform must be built by exactly one builder")
        seen[key] = image["digest"]


def _check_attestations(images: list[Descriptor], attestations: list[Descriptor]) -> None:
    digests = {image["digest"] for image in images}
    for attestation in attestations:
        subject = (attestation.get("annotations") or {}).get(REFERENCE_DIGEST)
        if subject is not None and subject not in digests:
            raise IndexMergeError(f"attestation {attestation['digest']} refers to {subject}, "
                                  "which is not in the merged index")


def _ordered(descriptor: Descriptor, docker: bool) -> Descriptor:
    keys = [k for k in _DESCRIPTOR_KEYS if k in descriptor]
    keys += sorted(k for k in descriptor if k not in _DESCRIPTOR_KEYS)
    if docker:
        keys = [k for k in keys if k in _DOCKER_KEYS]
    result = {key: descriptor[key] for key in keys}
    if "platform" in result:
        platform = result["platform"]
        result["platform"] = {k: platform[k] for k in (*_PLATFORM_KEYS, *sorted(platform))
                              if k in platform}
    return result

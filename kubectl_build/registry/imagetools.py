"""``kubectl buildkit imagetools``: inspect images and indexes, and make new indexes of them.

``create`` reads each source (an image or an index, by tag or digest), merges them with the
same code that merges a multi-builder push (platforms from configs, attestations kept,
``--annotation`` on the index and its entries) and puts the index under every tag. A source
in another repository of the same registry is copied in first: its blobs mounted
(``POST .../blobs/uploads/?mount=&from=``), its manifests put by digest. ``--append`` adds the
index already under the first tag. ``--dry-run`` prints the index instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_build.errors import RegistryError, UsageError
from kubectl_build.options.annotations import IndexAnnotations
from kubectl_build.registry.client import Manifest, Reference, RegistryClient, push_index
from kubectl_build.registry.index import (
    INDEXES,
    config_digest,
    merge_index,
    platform_key,
    push_targets,
)

Connect = Callable[[str], RegistryClient]
"""A client for a registry host, with the user's credentials."""


@dataclass(frozen=True)
class Inspected:
    """What ``inspect`` read: the name, its manifest or index, and the configs of its images."""

    name: str
    manifest: Manifest
    configs: dict[str, Any]
    """Image config documents by platform (``linux/amd64``), for ``.Image``."""


def inspect(connect: Connect, name: str) -> Inspected:
    """Read ``name``'s manifest (or index) and each image's config."""
    ref = Reference.parse(name)
    client = connect(ref.host)
    manifest = client.manifest(ref.repository, ref.reference)
    configs: dict[str, Any] = {}
    if manifest.media_type in INDEXES:
        for entry in manifest.json().get("manifests") or []:
            platform = entry.get("platform") or {}
            if platform.get("os") == "unknown":
                continue  # an attestation manifest
            child = client.manifest(ref.repository, entry["digest"])
            if (digest := config_digest(child)) is not None:
                configs[platform_key(platform)] = json.loads(client.blob(ref.repository, digest))
    elif (digest := config_digest(manifest)) is not None:
        config = json.loads(client.blob(ref.repository, digest))
        configs[platform_key(config)] = config
    return Inspected(name, manifest, configs)


def render_text(found: Inspected) -> str:
    """The human listing, laid out as buildx prints it."""
    lines = [f"Name:      {found.name}", f"MediaType: {found.manifest.media_type}",
             f"Digest:    {found.manifest.digest}"]
    doc = found.manifest.json()
    if found.manifest.media_type in INDEXES:
        base = found.name.split("@", 1)[0]
        if ":" in base.rsplit("/", 1)[-1]:
            base = base.rsplit(":", 1)[0]  # the repository: entries are named by digest
        lines += ["", "Manifests:"]
        for entry in doc.get("manifests") or []:
            lines += [f"  Name:        {base}@{entry['digest']}",
                      f"  MediaType:   {entry.get('mediaType', '')}",
                      f"  Platform:    {platform_key(entry.get('platform') or {})}"]
            annotations = entry.get("annotations") or {}
            if annotations:
                width = max(len(k) for k in annotations) + 1
                lines.append("  Annotations:")
                lines += [f"    {k + ':':<{width}} {v}" for k, v in sorted(annotations.items())]
            lines.append("")
    return "\n".join(lines).rstrip("\n")


_FIELDS = (".Name", ".Manifest", ".Manifest.Digest", ".Manifest.MediaType", ".Image")


def _expressions(template: str) -> list[tuple[str, str]]:
    """(text before, expression) pairs of a template, then ("rest", "")."""
    pieces, rest = [], template
    while "{{" in rest:
        before, _, after = rest.partition("{{")
        expr, closed, rest = after.partition("}}")
        if not closed:
            raise UsageError(f"invalid --format {template!r}: unclosed {{{{", "close it with }}")
        pieces.append((before, expr.strip()))
        key = expr.strip().removeprefix("json ").strip()
        if key not in _FIELDS:
            raise UsageError(f"invalid --format {template!r}: unknown field {key}",
                             "use " + ", ".join(_FIELDS))
    return [*pieces, (rest, "")]


def check_template(template: str) -> None:
    """Refuse a bad ``--format`` before anything is read from the registry."""
    _expressions(template)


def render_template(found: Inspected, template: str) -> str:
    """``--format``: ``{{.Name}}``, ``{{json .Manifest}}``, ``{{json .Image}}`` (and text around)."""
    doc = found.manifest.json()
    image: Any = next(iter(found.configs.values())) if len(found.configs) == 1 else found.configs
    values = {".Name": found.name, ".Manifest": doc, ".Image": image,
              ".Manifest.Digest": found.manifest.digest, ".Manifest.MediaType": found.manifest.media_type}
    pieces = _expressions(template)
    return "".join(before + (_evaluate(expr, values) if expr else "") for before, expr in pieces)


def _evaluate(expr: str, values: dict[str, Any]) -> str:
    value = values[expr.removeprefix("json ").strip()]
    if expr.startswith("json ") or not isinstance(value, str):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def create(connect: Connect, sources: Sequence[str], tags: Sequence[str], *, append: bool = False,
           annotations: IndexAnnotations | None = None, dry_run: bool = False) -> Manifest:
    """Merge ``sources`` into one index and put it under every tag (``dry_run``: only build it)."""
    targets = push_targets(tags)
    if not targets:
        raise UsageError("imagetools create needs a tag", "pass -t REGISTRY/NAME:TAG")
    first = targets[0]
    names = ([f"{first.name}:{first.tags[0]}"] if append and first.tags else []) + list(sources)
    if not names:
        raise UsageError("imagetools create needs at least one source image", "name the images to merge")
    read = [_read(connect, name) for name in names]
    merged = merge_index([m for _, m, _ in read], {k: v for _, _, c in read for k, v in c.items()},
                         annotations)
    if dry_run:
        return merged
    for target in targets:
        client = connect(target.host)
        for ref, manifest, _ in read:
            _copy_into(client, ref, manifest, target.host, target.repository)
        push_index(client, target.repository, target.tags, merged)
    return merged


def _read(connect: Connect, name: str) -> tuple[Reference, Manifest, dict[str, bytes]]:
    ref = Reference.parse(name)
    client = connect(ref.host)
    manifest = client.manifest(ref.repository, ref.reference)
    configs: dict[str, bytes] = {}
    if (digest := config_digest(manifest)) is not None:
        configs[digest] = client.blob(ref.repository, digest)
    return ref, manifest, configs


def _copy_into(client: RegistryClient, source: Reference, manifest: Manifest, host: str,
               repository: str) -> None:
    """Make ``manifest`` (and all it refers to) exist in ``repository``."""
    if source.repository == repository and source.host == host:
        return
    if source.host != host:
        raise RegistryError(f"{source.host}/{source.repository} is on another registry than {host}",
                            f"push the source to {host} first; imagetools copies within one registry")
    children = manifest.json().get("manifests") if manifest.media_type in INDEXES else None
    for entry in children or []:
        child = client.manifest(source.repository, entry["digest"])
        _copy_into(client, source, child, host, repository)
    if children is None:
        doc = manifest.json()
        for blob in [doc.get("config") or {}, *(doc.get("layers") or [])]:
            if blob.get("digest"):
                client.mount_blob(repository, blob["digest"], source.repository)
    client.put_manifest(repository, manifest.digest, manifest)

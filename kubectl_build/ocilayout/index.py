"""index.json and oci-layout of an OCI layout directory, as BuildKit's Go client writes them.

After a build exported into a layout (an image, or a cache manifest), the client records
the result's descriptor in index.json under a name or tag, replacing an entry with the same
one; a cache import looks its manifest up by tag. The JSON is what Go's encoding/json makes
of the OCI structs (fields in declaration order, map keys sorted, compact, ``<>&``
escaped), so a layout written by us and one written by buildctl are byte-identical.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
LAYOUT = {"imageLayoutVersion": "1.0.0"}

_DESCRIPTOR_FIELDS = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform",
                      "artifactType")
_PLATFORM_FIELDS = ("architecture", "os", "os.version", "os.features", "variant")
_INDEX_FIELDS = ("schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations")


@dataclass(frozen=True)
class Name:
    """How a descriptor is named in index.json: a full image name, or a bare tag."""

    value: str
    is_tag: bool = False


def go_json(value: Any) -> bytes:
    """Compact JSON with Go's escaping of ``<``, ``>``, ``&``, U+2028 and U+2029."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def _ordered(obj: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Go's order: the struct's fields, empty ones left out (they are all omitempty)."""
    return {key: obj[key] for key in fields if obj.get(key) not in (None, "", [], {})}


def go_descriptor(desc: Mapping[str, Any]) -> dict[str, Any]:
    """A descriptor as Go marshals ocispecs.Descriptor (size always present)."""
    out = _ordered(desc, _DESCRIPTOR_FIELDS)
    out.setdefault("size", 0)
    out = {key: out[key] for key in _DESCRIPTOR_FIELDS if key in out}
    if "annotations" in out:
        out["annotations"] = dict(sorted(out["annotations"].items()))
    if "platform" in out:
        out["platform"] = _ordered(out["platform"], _PLATFORM_FIELDS)
    return out


def reference_name(name: str) -> str:
    """The OCI ref name of an image name, as containerd's reference.Parse takes its object.

    Everything after the first ``:`` or ``@`` past the host (a ``@digest`` keeps its ``@``);
    empty for a name with neither; the name itself when it has no host part.
    """
    host, _, path = name.partition("/")
    if not host:
        return name
    cut = re.search(r"[:@]", path)
    if cut is None:
        return ""
    obj = path[cut.start():]
    return obj[1:] if obj.startswith(":") else obj


def _insert(index: dict[str, Any], desc: Mapping[str, Any], name: Name | None) -> None:
    entry = dict(desc)
    if name is not None:
        image_name, ref_name = ("", name.value) if name.is_tag else (name.value, reference_name(name.value))
        annotations = dict(entry.get("annotations") or {})
        if image_name:
            annotations[IMAGE_NAME] = image_name
        annotations[REF_NAME] = ref_name
        entry["annotations"] = annotations
        index["manifests"] = [m for m in index.get("manifests") or []
                              if (m.get("annotations") or {}).get(REF_NAME) != ref_name
                              or (m.get("annotations") or {}).get(IMAGE_NAME, "") != image_name]
    index.setdefault("manifests", []).append(entry)


def read_index(root: Path) -> dict[str, Any]:
    """The layout's index.json (an empty index when there is none)."""
    try:
        data = (root / "index.json").read_bytes()
    except FileNotFoundError:
        return {}
    return json.loads(data) if data else {}


def put(root: Path, desc: Mapping[str, Any], names: Sequence[Name]) -> None:
    """Record ``desc`` in root/index.json under each name, and write root/oci-layout."""
    root.mkdir(parents=True, exist_ok=True)
    _write(root / "oci-layout", go_json(LAYOUT))
    index = read_index(root)
    index.setdefault("schemaVersion", 2)
    index.setdefault("mediaType", INDEX_MEDIA_TYPE)
    unnamed: list[Name | None] = [None]
    for name in names or unnamed:
        _insert(index, desc, name)
    index["manifests"] = [go_descriptor(m) for m in index["manifests"]]
    _write(root / "index.json", go_json(_ordered(index, _INDEX_FIELDS)))


def lookup(root: Path, tag: str) -> dict[str, Any] | None:
    """The descriptor named ``tag`` (by image name first, then by ref name), or None."""
    manifests = read_index(root).get("manifests") or []
    for key in (IMAGE_NAME, REF_NAME):
        for manifest in manifests:
            if (manifest.get("annotations") or {}).get(key) == tag:
                return dict(manifest)
    return None


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: a reader never sees half an index."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""``--annotation [TYPE[PLATFORM]:]KEY=VALUE``: OCI annotations, as buildx parses them.

TYPE is ``manifest`` (the default when the daemon reads a bare key), ``index``,
``manifest-descriptor`` or ``index-descriptor``; a PLATFORM narrows a manifest-level
annotation to one platform's image. Each becomes an image/oci/docker exporter attribute
(``annotation-index.KEY``, ``annotation-manifest[linux/arm64].KEY``...), spelled as
BuildKit's exptypes.AnnotationKey spells it. The client-merged index of a multi-builder
build gets the ``index`` and ``manifest-descriptor`` ones itself (:func:`for_index`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_build.errors import UsageError
from kubectl_build.platforms.platform import parse_platform

TYPES = ("manifest", "manifest-descriptor", "index", "index-descriptor")
_LEVEL = re.compile(r"^([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?$")
_FORMS = "use KEY=VALUE or TYPE[PLATFORM]:KEY=VALUE with TYPE one of " + ", ".join(TYPES)


@dataclass(frozen=True)
class Annotation:
    """One annotation: its level, the platform it is narrowed to, key and value."""

    type: str  # "" (the daemon's default: manifest) or one of TYPES
    platform: str | None
    key: str
    value: str

    @property
    def attr(self) -> str:
        """The exporter attribute (the platform kept for manifest levels only, as BuildKit does)."""
        if not self.type:
            return f"annotation.{self.key}"
        narrowed = f"[{self.platform}]" if self.platform and self.type.startswith("manifest") else ""
        return f"annotation-{self.type}{narrowed}.{self.key}"


def parse_annotation(value: str) -> tuple[Annotation, ...]:
    """One ``--annotation`` value: ``LEVELS:KEY=VALUE`` gives one per comma-separated level."""
    key, sep, text = value.partition("=")
    if not sep:
        raise UsageError(f'invalid --annotation "{value}": expected KEY=VALUE', _FORMS)
    levels, colon, name = key.partition(":")
    if not colon:
        levels, name = "", key
    if not name or (colon and not levels) or any(c.isspace() for c in name):
        raise UsageError(f'invalid --annotation "{value}": expected [TYPE[PLATFORM]:]KEY=VALUE', _FORMS)
    if not levels:
        return (Annotation("", None, name, text),)
    return tuple(_level(value, level, name, text) for level in levels.split(","))


def _level(value: str, level: str, name: str, text: str) -> Annotation:
    match = _LEVEL.match(level)
    if match is None:
        raise UsageError(f'invalid --annotation "{value}": expected [TYPE[PLATFORM]:]KEY=VALUE', _FORMS)
    kind, platform = match[1], match[2]
    if kind not in TYPES:
        raise UsageError(f'invalid --annotation "{value}": unknown type "{kind}"', _FORMS)
    if platform is not None:
        try:
            platform = str(parse_platform(platform))
        except UsageError:
            raise UsageError(f'invalid --annotation "{value}": invalid platform "{platform}"',
                             "use os/arch[/variant], e.g. linux/arm64") from None
    return Annotation(kind, platform, name, text)


def parse_annotations(values: Iterable[str]) -> tuple[Annotation, ...]:
    """Every ``--annotation``; the last value of one attribute wins."""
    return tuple({a.attr: a for value in values for a in parse_annotation(value)}.values())


def exporter_attrs(annotations: Sequence[Annotation]) -> dict[str, str]:
    """The attributes an image, oci or docker exporter gets for these annotations."""
    return {a.attr: a.value for a in annotations}


@dataclass(frozen=True)
class IndexAnnotations:
    """What a client-built index carries: its own annotations and its entries'."""

    index: Mapping[str, str]
    descriptors: tuple[Annotation, ...]

    def for_descriptor(self, descriptor: Mapping[str, Any]) -> dict[str, str]:
        """The manifest-descriptor annotations that apply to one image entry."""
        platform = descriptor.get("platform") or {}
        spelled = "/".join(p for p in (platform.get("os"), platform.get("architecture"),
                                       platform.get("variant")) if p)
        return {a.key: a.value for a in self.descriptors if a.platform in (None, spelled)}


def for_index(annotations: Sequence[Annotation]) -> IndexAnnotations:
    """The index-level and descriptor-level annotations of a client-merged index."""
    return IndexAnnotations({a.key: a.value for a in annotations if a.type == "index"},
                            tuple(a for a in annotations if a.type == "manifest-descriptor"))

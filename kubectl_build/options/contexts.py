"""``--build-context NAME=VALUE``: named contexts, classified the way buildx does.

The name is an image reference in its familiar form (``docker.io/library/alpine:latest``
is ``alpine``), so ``FROM alpine`` and ``COPY --from=alpine`` pick it up. The value is a
local directory (its own FileSync dir, with its own ``.dockerignore``), an
``oci-layout://DIR[:TAG][@DIGEST]`` (read from the client's disk through the session's
content store), or passed to the frontend as it is: ``docker-image://REF``, an HTTP(S)
tarball or a Git URL, ``target:NAME``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from kubectl_build.errors import ContextError, UsageError
from kubectl_build.options.validate import DIGEST_PATTERN, TAG_PATTERN, is_remote_context, validate_tag

OCI_LAYOUT = "oci-layout://"
_PASSED_PREFIXES = ("docker-image://", "target:")
_DIGEST = re.compile(DIGEST_PATTERN)
_TAG = re.compile(TAG_PATTERN)
_FORMS = "use NAME=DIR, NAME=docker-image://REF, NAME=oci-layout://DIR[:TAG][@DIGEST], NAME=URL"


@dataclass(frozen=True)
class NamedContext:
    """One named context: ``kind`` is ``local``, ``oci-layout`` or ``passed``."""

    name: str
    kind: str
    value: str
    """The directory (local, oci-layout) or the value handed to the frontend (passed)."""
    tag: str = ""
    digest: str = ""
    store: str = ""
    """An oci-layout's content store id in the session, given when its digest is resolved."""

    @property
    def local_name(self) -> str:
        """The FileSync dir a local one is served as (never the build's own two)."""
        return f"_{self.name}" if self.name in ("context", "dockerfile") else self.name


def familiar_name(name: str) -> str:
    """The reference's familiar form, ``:latest`` dropped, as buildx keys named contexts."""
    try:
        validate_tag(name)
    except UsageError:
        raise UsageError(f'invalid --build-context name "{name}": not an image reference',
                         "use a lowercase name such as base or docker.io/library/alpine:3.20") from None
    first, slash, rest = name.partition("/")
    if slash and first in ("docker.io", "index.docker.io"):
        name = rest
    if name.startswith("library/") and "/" not in name.removeprefix("library/"):
        name = name.removeprefix("library/")
    return name.removesuffix(":latest")


def parse_oci_layout(path: str) -> tuple[str, str, str]:
    """``DIR[:TAG][@DIGEST]`` → (DIR, TAG or latest, DIGEST or ""), as buildx splits it."""
    digest = tag = ""
    at = path.rfind("@")
    if at >= 0 and _DIGEST.fullmatch(path[at + 1:]):
        path, digest = path[:at], path[at + 1:]
    colon = path.rfind(":")
    if colon >= 0 and _TAG.fullmatch(path[colon + 1:]):
        path, tag = path[:colon], path[colon + 1:]
    return path, tag or "latest", digest


def parse_build_context(value: str) -> NamedContext:
    """One ``--build-context`` value.

    Raises:
        UsageError: not NAME=VALUE, or the name is no image reference.
        ContextError: a local directory that does not exist or is a file.
    """
    name, sep, target = value.partition("=")
    if not sep or not name or not target:
        raise UsageError(f'invalid --build-context "{value}": expected NAME=VALUE', _FORMS)
    name = familiar_name(name)
    if is_remote_context(target) or target.startswith(_PASSED_PREFIXES):
        return NamedContext(name, "passed", target)
    if target.startswith(OCI_LAYOUT):
        path, tag, digest = parse_oci_layout(target.removeprefix(OCI_LAYOUT))
        return NamedContext(name, "oci-layout", path, tag, digest)
    if not os.path.isdir(target):
        why = "is a file, not a directory" if os.path.exists(target) else "does not exist"
        raise ContextError(f'build context "{name}": {target} {why}',
                           "give a directory, or one of docker-image://, oci-layout://, a URL")
    return NamedContext(name, "local", os.path.abspath(target))


def unique_names(contexts: tuple[NamedContext, ...]) -> tuple[NamedContext, ...]:
    """The last value of each name wins, as in buildx's map."""
    return tuple({c.name: c for c in contexts}.values())

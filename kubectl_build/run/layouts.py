"""OCI layout directories around a solve: local caches in, index.json entries out.

Before the solve, a ``--cache-from type=local,src=DIR`` is resolved as Go's client does it:
the cache manifest is looked up in DIR/index.json by its tag (``latest`` unless
``tag=``), or taken from ``digest=``, and the import is left out with a warning when the
directory, the tag or the blob is missing (the build goes on without that cache, as with
buildx). After the solve, the manifest a local cache export wrote and the image a
``tar=false`` output wrote are recorded in their directory's index.json.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kubectl_build.buildkit.session.session import new_id
from kubectl_build.console import Console
from kubectl_build.errors import ContextError, OutputError
from kubectl_build.ocilayout import index
from kubectl_build.ocilayout.store import ContentError, LayoutStore
from kubectl_build.options.build import BuildOptions, CacheSpec
from kubectl_build.planning.solve import PreparedSolve

CACHE_MANIFEST_KEY = "cache.manifest"
IMAGE_DESCRIPTOR_KEY = "containerimage.descriptor"
IMAGE_NAME_KEY = "image.name"


def resolve_cache_imports(options: BuildOptions, console: Console) -> BuildOptions:
    """The options with each local cache import pinned to its manifest digest, or dropped."""
    kept = []
    for cache in options.cache_from:
        if cache.type != "local":
            kept.append(cache)
            continue
        digest, why = _manifest_digest(cache)
        if digest is None:
            console.info(f"warning: --cache-from type=local,src={cache.attrs['src']}: {why}; "
                         "building without this cache")
            continue
        kept.append(CacheSpec("local", MappingProxyType({**cache.attrs, "digest": digest})))
    return replace(options, cache_from=tuple(kept))


def resolve_named_contexts(options: BuildOptions) -> BuildOptions:
    """Each oci-layout named context with its digest (by tag, else the single entry) and store.

    Raises:
        ContextError: the layout has no index.json or no descriptor by that tag.
    """
    resolved = []
    for ctx in options.build_contexts:
        if ctx.kind == "oci-layout":
            digest = ctx.digest or _layout_digest(ctx.value, ctx.tag, ctx.name)
            ctx = replace(ctx, digest=digest, store=new_id())
        resolved.append(ctx)
    return replace(options, build_contexts=tuple(resolved))


def _layout_digest(root: str, tag: str, name: str) -> str:
    where = f"build context {name!r}: oci-layout {root}"
    hint = "point oci-layout:// at a directory written with -o type=oci,tar=false"
    if not (Path(root) / "index.json").is_file():
        raise ContextError(f"{where} has no index.json", hint)
    try:
        found = index.lookup(Path(root), tag) or _single(Path(root))
    except (OSError, ValueError) as err:
        raise ContextError(f"{where}: cannot read its index.json ({_why(err)})", hint) from None
    if found is None or not isinstance(found.get("digest"), str):
        raise ContextError(f"{where}: no image tagged {tag!r} and not exactly one image in index.json",
                           "name one with oci-layout://DIR:TAG or oci-layout://DIR@sha256:...")
    return str(found["digest"])


def _single(root: Path) -> dict[str, Any] | None:
    manifests = index.read_index(root).get("manifests") or []
    return dict(manifests[0]) if len(manifests) == 1 else None


def _manifest_digest(cache: CacheSpec) -> tuple[str | None, str]:
    root = Path(cache.attrs["src"])
    digest = cache.attrs.get("digest", "")
    if not digest:
        tag = cache.attrs.get("tag", "latest")
        if not (root / "index.json").is_file():
            return None, "no index.json there (nothing was exported to it yet)"
        try:
            found = index.lookup(root, tag)
        except (OSError, ValueError) as err:
            return None, f"cannot read its index.json ({_why(err)})"
        if found is None:
            return None, f"its index.json names no cache {tag!r}"
        digest = str(found.get("digest", ""))
    try:
        LayoutStore(root).info(digest)
    except ContentError as err:
        return None, f"manifest {digest} is not in it ({err.message})"
    return digest, ""


def record_results(prepared: PreparedSolve, response: Mapping[str, str]) -> None:
    """Name what the solve wrote into layout directories in their index.json."""
    cache = response.get(CACHE_MANIFEST_KEY)
    image = response.get(IMAGE_DESCRIPTOR_KEY)
    for use in prepared.layouts:
        if use.records == "cache" and cache:
            _put(use.root, _decode(cache, CACHE_MANIFEST_KEY, b64=False), [index.Name(use.tag, is_tag=True)])
        elif use.records == "image" and image:
            names = [index.Name(n) for n in response[IMAGE_NAME_KEY].split(",")] \
                if IMAGE_NAME_KEY in response else [index.Name("latest", is_tag=True)]
            _put(use.root, _decode(image, IMAGE_DESCRIPTOR_KEY, b64=True), names)


def _decode(value: str, key: str, *, b64: bool) -> dict[str, Any]:
    try:
        decoded = json.loads(base64.b64decode(value, validate=True) if b64 else value)
    except (ValueError, binascii.Error) as err:
        raise OutputError(f"the daemon's {key} is not a descriptor: {err}",
                          "report this with the buildkitd version") from None
    if not isinstance(decoded, dict) or "digest" not in decoded:
        raise OutputError(f"the daemon's {key} is not a descriptor", "report this with the buildkitd version")
    return decoded


def _put(root: str, desc: Mapping[str, Any], names: list[index.Name]) -> None:
    try:
        index.put(Path(root), desc, names)
    except OSError as err:
        raise OutputError(f"cannot write {root}/index.json: {_why(err)}",
                          "check that the directory is writable and the disk has room") from None


def _why(err: Exception) -> str:
    return err.strerror if isinstance(err, OSError) and err.strerror else str(err)


def prepare_dirs(prepared: PreparedSolve) -> None:
    """Create the directories the daemon will write into (before the solve, as Go does)."""
    for use in prepared.layouts:
        if use.records:
            try:
                Path(use.root).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OutputError(f"cannot create {use.root}: {_why(err)}",
                                  "choose a writable directory") from None

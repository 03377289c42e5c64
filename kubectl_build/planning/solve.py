"""From validated options to one solve: frontend attributes, exporters, cache. Pure."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubectl_build.buildkit.solve import (
    CacheEntry,
    ExporterSpec,
    FrontendInputs,
    SolveSpec,
    frontend_attrs,
)
from kubectl_build.context.sources import LocalSources
from kubectl_build.options.annotations import exporter_attrs
from kubectl_build.options.attests import frontend_attrs as attest_attrs
from kubectl_build.options.build import BuildOptions, OutputSpec

# The session content store the daemon writes an oci/docker layout output into.
EXPORT_STORE = "export"


@dataclass(frozen=True)
class LayoutUse:
    """An OCI layout directory the daemon reads or writes through the session's content store."""

    store_id: str
    """The id the daemon asks for: ``local:<dir as given>`` for a cache, ``export`` for an output."""
    root: str
    records: str = ""
    """What the client records in its index.json after the solve: ``cache``, ``image`` or nothing."""
    tag: str = "latest"
    """The name a cache manifest gets in index.json."""


@dataclass(frozen=True)
class PreparedSolve:
    """The solve to send, plus where FileSend streams and layout stores of its exporters go."""

    spec: SolveSpec
    file_targets: Mapping[int, tuple[str, str]]  # exporter index → ("file"|"dir", dest)
    image_names: tuple[str, ...]
    layouts: tuple[LayoutUse, ...] = ()
    named_dirs: Mapping[str, str] = field(default_factory=dict)
    """FileSync dir name → local directory, for the named contexts that are directories."""


def named_sources(options: BuildOptions) -> dict[str, str]:
    """Each named context's source as the frontend reads it (oci-layouts already resolved)."""
    sources = {}
    for ctx in options.build_contexts:
        if ctx.kind == "local":
            sources[ctx.name] = f"local:{ctx.local_name}"
        elif ctx.kind == "oci-layout":
            sources[ctx.name] = f"oci-layout://{ctx.store}:{ctx.tag}@{ctx.digest}"
        else:
            sources[ctx.name] = ctx.value
    return sources


def shared_key(directory: str, client_id: str) -> str:
    """Stable per (client machine, directory): lets the daemon diff a rebuild's upload."""
    digest = hashlib.sha256(f"{client_id}:{directory}".encode()).hexdigest()[:32]
    return f"{os.path.basename(directory) or 'context'}:{digest}"


def named_shared_keys(options: BuildOptions, client_id: str) -> dict[str, str]:
    """``sharedkey:localdir:NAME`` per local named context, as buildx sends them."""
    return {f"sharedkey:localdir:{ctx.name}": shared_key(os.path.abspath(ctx.value), client_id)
            for ctx in options.build_contexts if ctx.kind == "local"}


def layout_uses(options: BuildOptions) -> tuple[LayoutUse, ...]:
    """The layout directories of local caches and tar=false outputs, one per store id.

    A directory that is both imported and exported is one store, recorded as the export.
    """
    uses: dict[str, LayoutUse] = {}
    for cache in options.cache_from:
        if cache.type == "local":
            uses[f"local:{cache.attrs['src']}"] = LayoutUse(f"local:{cache.attrs['src']}", cache.attrs["src"])
    for cache in options.cache_to:
        if cache.type == "local":
            store = f"local:{cache.attrs['dest']}"
            uses[store] = LayoutUse(store, cache.attrs["dest"], "cache", cache.attrs.get("tag", "latest"))
    for out in _default_outputs(options):
        if out.layout_dir and out.dest:
            uses[EXPORT_STORE] = LayoutUse(EXPORT_STORE, out.dest, "image")
    for ctx in options.build_contexts:
        if ctx.kind == "oci-layout":
            uses[f"oci:{ctx.store}"] = LayoutUse(f"oci:{ctx.store}", ctx.value)
    return tuple(uses.values())


def _exporter(out: OutputSpec, annotations: Mapping[str, str]) -> ExporterSpec:
    attrs = dict(out.attrs)
    if out.type in ("image", "oci", "docker"):
        attrs.update({k: v for k, v in annotations.items() if k not in attrs})
    if out.type in ("image", "oci"):
        # v0.31 flipped the default to OCI; say it so every daemon version agrees.
        attrs.setdefault("oci-mediatypes", "true")
    elif out.type == "docker":
        attrs.setdefault("oci-mediatypes", "false")
    return ExporterSpec(out.type, attrs, out.dest)


def _default_outputs(options: BuildOptions) -> tuple[OutputSpec, ...]:
    if options.outputs:
        return options.outputs
    if options.tags or options.load:
        # Without --push the image stays in the builder's image store (the node's
        # containerd with the containerd worker) under its names; --load without a tag
        # stores it by digest, as buildx loads an untagged image.
        return (OutputSpec("image", {"name": ",".join(options.tags)} if options.tags else {}, None),)
    return ()


def _carries_attestations(options: BuildOptions) -> bool:
    """Whether buildx's default provenance applies to these outputs.

    Not for an image output without push (the cluster's image store, where buildx, loading
    into docker, drops attestations too), nor with Docker media types, which cannot hold
    attestation manifests (the daemon would refuse the whole export).
    """
    outputs = _default_outputs(options)
    loads = any(out.type == "image" and not out.pushes for out in outputs)
    docker_types = any(out.type == "docker" or out.attrs.get("oci-mediatypes") in ("false", "0")
                       for out in outputs if out.type in ("image", "oci", "docker"))
    return not loads and not docker_types


def build_args(options: BuildOptions, environ: Mapping[str, str]) -> dict[str, str]:
    """Build args, plus SOURCE_DATE_EPOCH from the environment as buildx passes it."""
    args = dict(options.build_args)
    if "SOURCE_DATE_EPOCH" in environ and "SOURCE_DATE_EPOCH" not in args:
        args["SOURCE_DATE_EPOCH"] = environ["SOURCE_DATE_EPOCH"]
    return args


def prepare_solve(options: BuildOptions, sources: LocalSources,
                  environ: Mapping[str, str], client_id: str = "") -> PreparedSolve:
    """The SolveSpec for these options and local sources.

    ``client_id`` names this client machine in the shared keys of named local contexts.
    """
    imports = tuple(CacheEntry(c.type, dict(c.attrs)) for c in options.cache_from)
    inputs = FrontendInputs(
        dockerfile_name=sources.dockerfile_name,
        target=options.target,
        platforms=tuple(str(p) for p in options.platforms),
        build_args=build_args(options, environ),
        labels=dict(options.labels),
        no_cache=options.no_cache,
        no_cache_filter=options.no_cache_filter,
        pull=options.pull,
        add_hosts=options.add_hosts,
        network=options.network,
        remote_context=sources.remote_context,
        cache_imports=imports,
        attests=attest_attrs(options.attests, default_provenance=_carries_attestations(options),
                             environ=environ),
        shm_size=options.shm_size,
        ulimits=options.ulimits,
        named_contexts=named_sources(options),
    )
    # cacheonly is a client-side notion (buildx's too): build, keep the cache, export nothing.
    outputs = [out for out in _default_outputs(options) if out.type != "cacheonly"]
    annotations = exporter_attrs(options.annotations)
    exporters = [_exporter(out, annotations) for out in outputs]
    targets = {
        index: ("dir" if out.type == "local" else "file", out.dest)
        for index, out in enumerate(outputs)
        if out.dest is not None and not out.layout_dir
    }
    names = tuple(n for e in exporters for n in e.attrs.get("name", "").split(",") if n)
    entitlements = list(dict.fromkeys(options.allow))
    if options.network == "host" and "network.host" not in entitlements:
        entitlements.append("network.host")
    spec = SolveSpec(
        dockerfile_name=sources.dockerfile_name,
        frontend_attrs={**frontend_attrs(inputs), **named_shared_keys(options, client_id)},
        exporters=[ExporterSpec(e.type, e.attrs) for e in exporters],
        cache_imports=imports,
        cache_exports=tuple(CacheEntry(c.type, dict(c.attrs)) for c in options.cache_to),
        entitlements=entitlements,
    )
    named_dirs = {c.local_name: c.value for c in options.build_contexts if c.kind == "local"}
    return PreparedSolve(spec, targets, names, layout_uses(options), named_dirs)

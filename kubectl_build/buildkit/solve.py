"""Assemble a SolveRequest for the Dockerfile frontend. Pure: no I/O.

The daemon version range we support (v0.12 .. newest) is handled here: the
exporter list goes both into `exporters` (v0.13+) and the deprecated
single-exporter fields, and cache imports into both the Cache message and the
frontend's `cache-imports` attribute, as the Go client does. Daemons before v0.13
read only the deprecated fields: more than one exporter cannot go to them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubectl_build._proto import control_pb2

FRONTEND = "dockerfile.v0"
# The first release whose daemon reads SolveRequest.exporters (several outputs).
MULTI_EXPORTER_SINCE = (0, 13)
FILE_EXPORTERS = ("oci", "docker", "tar")


@dataclass(frozen=True)
class ExporterSpec:
    """One exporter of the solve, and where its FileSend stream goes (if anywhere)."""

    type: str
    attrs: Mapping[str, str]
    dest: str | None = None  # a file ('-' = stdout) for oci/docker/tar, a dir for local


@dataclass(frozen=True)
class CacheEntry:
    """A cache import or export: type plus attributes."""

    type: str
    attrs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SolveSpec:
    """Everything a Dockerfile solve needs, in wire-neutral form."""

    dockerfile_name: str
    frontend_attrs: Mapping[str, str]
    exporters: Sequence[ExporterSpec] = ()
    cache_imports: Sequence[CacheEntry] = ()
    cache_exports: Sequence[CacheEntry] = ()
    entitlements: Sequence[str] = ()


@dataclass(frozen=True)
class FrontendInputs:
    """The build's user-facing knobs that become frontend attributes."""

    dockerfile_name: str = "Dockerfile"
    target: str | None = None
    platforms: Sequence[str] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    no_cache: bool = False
    no_cache_filter: Sequence[str] = ()
    pull: bool = False
    add_hosts: Sequence[tuple[str, str]] = ()
    network: str = "default"
    remote_context: str | None = None
    cache_imports: Sequence[CacheEntry] = ()
    multi_platform: bool = False
    attests: Mapping[str, str] = field(default_factory=dict)
    """``attest:<type>`` attributes, already spelled."""
    shm_size: int = 0
    ulimits: str = ""
    named_contexts: Mapping[str, str] = field(default_factory=dict)
    """NAME → what the frontend reads it from (``local:DIR``, ``oci-layout://...``, a ref)."""


def frontend_attrs(inputs: FrontendInputs) -> dict[str, str]:
    """The `dockerfile.v0` frontend attributes for these inputs."""
    attrs: dict[str, str] = {"filename": inputs.dockerfile_name}
    if inputs.remote_context:
        attrs["context"] = inputs.remote_context
    if inputs.target:
        attrs["target"] = inputs.target
    if inputs.platforms:
        attrs["platform"] = ",".join(inputs.platforms)
    multi = inputs.build_args.get("BUILDKIT_MULTI_PLATFORM", "").lower() in ("1", "t", "true")
    if (inputs.multi_platform or multi) and len(inputs.platforms) < 2:
        # an index for one platform; with several the frontend makes one anyway (and
        # buildx says nothing)
        attrs["multi-platform"] = "true"
    for key, value in inputs.build_args.items():
        attrs[f"build-arg:{key}"] = value
    for key, value in inputs.labels.items():
        attrs[f"label:{key}"] = value
    if inputs.no_cache:
        attrs["no-cache"] = ""  # present-and-empty means every stage
    elif inputs.no_cache_filter:
        attrs["no-cache"] = ",".join(inputs.no_cache_filter)
    if inputs.pull:
        attrs["image-resolve-mode"] = "pull"
    if inputs.add_hosts:
        attrs["add-hosts"] = ",".join(f"{host}={ip}" for host, ip in inputs.add_hosts)
    if inputs.network in ("host", "none"):
        attrs["force-network-mode"] = inputs.network
    attrs.update(inputs.attests)
    if inputs.shm_size:
        attrs["shm-size"] = str(inputs.shm_size)
    if inputs.ulimits:
        attrs["ulimit"] = inputs.ulimits
    for name, source in inputs.named_contexts.items():
        attrs[f"context:{name}"] = source
    if inputs.named_contexts:
        # what buildx announces with named contexts: the frontend may forward them
        attrs["frontend.caps"] = "moby.buildkit.frontend.contexts+forward"
    if inputs.cache_imports:
        attrs["cache-imports"] = json.dumps(  # compact, as Go's encoding/json writes it
            [{"Type": c.type, "Attrs": dict(c.attrs)} for c in inputs.cache_imports],
            separators=(",", ":"))
    return attrs


def _entries(entries: Sequence[CacheEntry]) -> list[control_pb2.CacheOptionsEntry]:
    return [control_pb2.CacheOptionsEntry(type=c.type, attrs=dict(c.attrs)) for c in entries]


def solve_request(spec: SolveSpec, ref: str, session_id: str) -> control_pb2.SolveRequest:
    """The SolveRequest for a spec, compatible with daemons from v0.12 on."""
    exporters = [control_pb2.Exporter(type=e.type, attrs=dict(e.attrs)) for e in spec.exporters]
    request = control_pb2.SolveRequest(
        ref=ref,
        session=session_id,
        frontend=FRONTEND,
        frontend_attrs=dict(spec.frontend_attrs),
        exporters=exporters,
        entitlements=list(spec.entitlements),
        cache=control_pb2.CacheOptions(
            exports=_entries(spec.cache_exports), imports=_entries(spec.cache_imports)
        ),
    )
    if exporters:
        request.exporter_deprecated = exporters[0].type
        request.exporter_attrs_deprecated.update(exporters[0].attrs)
    return request


def daemon_release(version: str) -> tuple[int, int] | None:
    """(major, minor) of a buildkitd version string; None for a development build."""
    match = re.match(r"v?(\d+)\.(\d+)\.", version)
    release = (int(match[1]), int(match[2])) if match else None
    return None if release == (0, 0) else release  # "0.0.0+unknown": built from source


def drops_exporters(spec: SolveSpec, daemon_version: str) -> bool:
    """True when the daemon would silently run only the first of the spec's exporters."""
    release = daemon_release(daemon_version)
    return len(spec.exporters) > 1 and release is not None and release < MULTI_EXPORTER_SINCE

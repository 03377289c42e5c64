"""Parsers for the plain build flag values: build args, labels, hosts, outputs, progress. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar

from kubectl_build.errors import UsageError
from kubectl_build.options.flags import BuildFlags
from kubectl_build.options.specs import (
    CacheSpec,
    OutputSpec,
    SecretSpec,
    SSHSpec,
    parse_cache,
    parse_output,
)

PROGRESS_MODES = ("auto", "tty", "plain", "quiet", "rawjson", "none")
"""Accepted ``--progress`` values; ``auto`` means tty on a terminal, else plain."""
NETWORK_MODES = ("default", "host", "none")
"""Accepted ``--network`` values for RUN steps."""
ENTITLEMENTS = ("network.host", "security.insecure")
"""Accepted ``--allow`` values (BuildKit entitlements)."""

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _key_value(value: str, flag: str) -> tuple[str, str | None]:
    key, sep, val = value.partition("=")
    if not key.strip() or key != key.strip():
        raise UsageError(f'invalid {flag} "{value}": expected KEY=VALUE or KEY', None)
    return key, val if sep else None


def parse_build_args(values: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Parse ``--build-arg KEY=VALUE`` values; a bare ``KEY`` takes the environment's value.

    A bare ``KEY`` that is not set in the environment is dropped, as docker does.

    Raises:
        UsageError: a value has an empty or space-padded key.
    """
    args: dict[str, str] = {}
    for value in values:
        key, val = _key_value(value, "--build-arg")
        if val is None:
            if key not in environ:
                continue
            val = environ[key]
        args[key] = val
    return args


def parse_labels(values: Iterable[str]) -> dict[str, str]:
    """Parse ``--label KEY=VALUE`` values; a bare ``KEY`` gets an empty value.

    Raises:
        UsageError: a value has an empty or space-padded key.
    """
    return {key: val or "" for key, val in (_key_value(v, "--label") for v in values)}


def parse_add_hosts(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Parse ``--add-host HOST:IP`` (or ``HOST=IP``; IPv6 may be bracketed) values.

    Raises:
        UsageError: the host is empty or the IP is not an IP address.
    """
    hosts = []
    for value in values:
        sep = "=" if "=" in value else ":"
        host, _, addr = value.partition(sep)
        addr = addr.strip().removeprefix("[").removesuffix("]")
        if addr == "host-gateway":
            raise UsageError(
                f'--add-host "{value}": host-gateway needs the Docker engine',
                "give the gateway's IP address instead",
            )
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            addr = ""
        if not host.strip() or not addr:
            raise UsageError(f'invalid --add-host "{value}"', "use HOST:IP, e.g. db:10.0.0.5")
        hosts.append((host.strip(), addr))
    return tuple(hosts)


def choice(value: str, flag: str, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices``.

    Raises:
        UsageError: it is not.
    """
    if value not in choices:
        raise UsageError(f'invalid {flag} "{value}"', f"use one of {', '.join(choices)}")
    return value


def _merge_push(outputs: Sequence[OutputSpec], push: bool, tags: Sequence[str]) -> tuple[OutputSpec, ...]:
    """Fold ``--push`` into the outputs and name unnamed image-like outputs after the tags."""
    if push and not any(out.type == "image" for out in outputs):
        outputs = [*outputs, OutputSpec("image", _EMPTY, None)]
    merged = []
    for out in outputs:
        attrs = dict(out.attrs)
        if push and out.type == "image":
            attrs["push"] = "true"
        if out.type in ("image", "oci", "docker") and not attrs.get("name") and tags:
            attrs["name"] = ",".join(tags)
        merged.append(OutputSpec(out.type, MappingProxyType(attrs), out.dest, out.loads))
    for out in merged:
        if out.pushes and not out.attrs.get("name"):
            raise UsageError(
                "nothing to push: the image has no name",
                "tag it with -t REGISTRY/NAME[:TAG] or pass --output type=image,name=...",
            )
    if sum(out.dest == "-" for out in merged) > 1:
        raise UsageError("only one --output can write to stdout (dest=-)", None)
    if sum(out.layout_dir for out in merged) > 1:
        # The daemon knows a single client-side image store per build ("export").
        raise UsageError("only one --output can be an OCI layout directory (tar=false)",
                         "write the others as tar files, or build once per layout")
    # The same pushing output given twice (--push plus type=registry) must not push twice.
    return tuple(dict.fromkeys(merged))


def outputs(flags: BuildFlags, tags: Sequence[str]) -> tuple[OutputSpec, ...]:
    """The ``--output`` values with ``--push`` folded in and image outputs named."""
    specs = [parse_output(value) for value in flags.output]
    if flags.quiet and any(out.dest == "-" for out in specs):
        raise UsageError(
            "-q prints the digest on stdout, which --output dest=- also uses",
            "write the output to a file or drop -q",
        )
    return _merge_push(specs, flags.push, tags)


def network(flags: BuildFlags) -> tuple[str, tuple[str, ...]]:
    """The network mode and the entitlements, with network.host implied by --network host."""
    mode = choice(flags.network or "default", "--network", NETWORK_MODES)
    allow = [choice(value, "--allow", ENTITLEMENTS) for value in items(flags.allow)]
    if mode == "host":
        allow.append("network.host")
    return mode, tuple(dict.fromkeys(allow))


def cache_to(values: Iterable[str], build_args: Mapping[str, str]) -> tuple[CacheSpec, ...]:
    """The ``--cache-to`` values, plus inline cache when BUILDKIT_INLINE_CACHE asks for it."""
    specs = [parse_cache(value, export=True) for value in values]
    # docker and buildx read --build-arg BUILDKIT_INLINE_CACHE=1 as a request for inline cache.
    inline = build_args.get("BUILDKIT_INLINE_CACHE", "").strip().lower() in ("1", "t", "true")
    if inline and not any(spec.type == "inline" for spec in specs):
        specs.append(CacheSpec("inline", _EMPTY))
    return tuple(specs)


def progress(flags: BuildFlags, environ: Mapping[str, str]) -> str:
    """The progress mode: ``-q``, ``--progress`` or BUILDKIT_PROGRESS, else auto."""
    if flags.quiet:
        if flags.progress not in (None, "auto", "quiet", "none"):
            raise UsageError(f"-q cannot be combined with --progress {flags.progress}", "drop one of them")
        return "quiet"
    value = flags.progress or environ.get("BUILDKIT_PROGRESS") or "auto"
    return choice(value, "--progress", PROGRESS_MODES)


_Spec = TypeVar("_Spec", SecretSpec, SSHSpec)


def last_per_id(specs: Iterable[_Spec]) -> tuple[_Spec, ...]:
    """One spec per id, the last given."""
    # Docker keeps the last value given for an id; keep the first position for stable order.
    return tuple({spec.id: spec for spec in specs}.values())


def items(values: Iterable[str]) -> list[str]:
    """The items of repeated, comma-separated flag values."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]

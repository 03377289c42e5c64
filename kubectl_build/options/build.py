"""Build options: the command line parsed and validated into frozen dataclasses.

Pure: nothing here talks to a daemon, a registry or a cluster. It reads only the
environment mapping passed in and checks that local paths named on the command line
(context, Dockerfile, secret and TLS files) exist, so bad input fails before any
connection. ``kubectl_build.cli.commands`` fills a ``BuildFlags`` with the raw flag values and
``build_options`` turns it into the ``BuildOptions`` every later stage consumes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from kubectl_build.errors import UsageError
from kubectl_build.options.specs import (
    CacheSpec,
    OutputSpec,
    SecretSpec,
    SSHSpec,
    parse_cache,
    parse_output,
    parse_secret,
    parse_ssh,
)
from kubectl_build.options.validate import (
    check_daemon_address,
    check_tls_files,
    resolve_context,
    validate_tag,
)
from kubectl_build.platforms.platform import Platform, native_platform, parse_platform, parse_platforms

__all__ = [
    "PROGRESS_MODES",
    "NETWORK_MODES",
    "ENTITLEMENTS",
    "DEFAULT_BUILDER",
    "BuildFlags",
    "BuildOptions",
    "CacheSpec",
    "OutputSpec",
    "Platform",
    "SSHSpec",
    "SecretSpec",
    "build_options",
    "native_platform",
    "parse_add_hosts",
    "parse_build_args",
    "parse_cache",
    "parse_labels",
    "parse_output",
    "parse_platform",
    "parse_platforms",
    "parse_secret",
    "parse_ssh",
]

PROGRESS_MODES = ("auto", "tty", "plain", "quiet", "rawjson")
"""Accepted ``--progress`` values; ``auto`` means tty on a terminal, else plain."""
NETWORK_MODES = ("default", "host", "none")
"""Accepted ``--network`` values for RUN steps."""
ENTITLEMENTS = ("network.host", "security.insecure")
"""Accepted ``--allow`` values (BuildKit entitlements)."""
DEFAULT_BUILDER = "buildkit"
"""Builder name when neither ``--builder`` nor ``BUILDKIT_BUILDER`` is given."""
DEFAULT_QEMU_IMAGE = "docker.io/tonistiigi/binfmt:latest"
"""What buildx users install emulators with; the test bed serves a local stand-in."""

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _no_mapping() -> Mapping[str, str]:
    return _EMPTY


@dataclass(frozen=True)
class BuildFlags:
    """The raw values of the ``kubectl build`` flags, exactly as typed (None = not given).

    Field names match the click parameter names, so the command body can pass its
    keyword arguments straight through; all interpretation happens in ``build_options``.
    """

    context: str
    file: str | None = None
    tag: tuple[str, ...] = ()
    platform: tuple[str, ...] = ()
    build_arg: tuple[str, ...] = ()
    label: tuple[str, ...] = ()
    target: str | None = None
    no_cache: bool = False
    no_cache_filter: tuple[str, ...] = ()
    pull: bool = False
    secret: tuple[str, ...] = ()
    ssh: tuple[str, ...] = ()
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    output: tuple[str, ...] = ()
    push: bool = False
    load: bool = False
    network: str | None = None
    add_host: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    progress: str | None = None
    quiet: bool = False
    iidfile: str | None = None
    metadata_file: str | None = None
    debug: bool = False
    buildkit_host: str | None = None
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None
    tlsservername: str | None = None
    builder: str | None = None
    registry_secret: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None
    kube_context: str | None = None
    mode: str | None = None
    qemu_image: str | None = None
    transport: str | None = None


@dataclass(frozen=True)
class BuildOptions:
    """Everything one build needs, validated; produced only by ``build_options``."""

    context: str
    """A local directory (as given), a Git or HTTP(S) URL, or ``-`` for stdin."""
    dockerfile: str | None
    """Path of the Dockerfile (checked to exist for a local context), ``-`` for stdin,
    or None to let the frontend use ``Dockerfile`` in a remote or stdin context."""
    tags: tuple[str, ...] = ()
    """Image references from ``-t``, validated against the reference grammar."""
    platforms: tuple[Platform, ...] = ()
    """Target platforms; empty means the daemon's own platform."""
    build_args: Mapping[str, str] = field(default_factory=_no_mapping)
    """``--build-arg`` values; a bare ``KEY`` took the environment's value (or was dropped)."""
    labels: Mapping[str, str] = field(default_factory=_no_mapping)
    """Image labels from ``--label``."""
    target: str | None = None
    """The stage to build (``--target``); None builds the last stage."""
    no_cache: bool = False
    """Ignore the build cache for every step."""
    no_cache_filter: tuple[str, ...] = ()
    """Stages for which the cache is ignored."""
    pull: bool = False
    """Always resolve base images afresh instead of using cached metadata."""
    secrets: tuple[SecretSpec, ...] = ()
    """Secrets served to the build, one per id (the last flag wins, as in docker)."""
    ssh: tuple[SSHSpec, ...] = ()
    """SSH agents or keys served to the build, one per id."""
    cache_from: tuple[CacheSpec, ...] = ()
    """Cache sources to import."""
    cache_to: tuple[CacheSpec, ...] = ()
    """Cache destinations to export."""
    outputs: tuple[OutputSpec, ...] = ()
    """Exporters; ``--push`` is already folded in as an image output with ``push=true``,
    and image/oci/docker outputs without ``name`` carry the tags. Empty means the default
    for the builder (a later stage decides: cluster image store or build cache only)."""
    push: bool = False
    """``--push`` was given (already reflected in ``outputs``)."""
    load: bool = False
    """``--load`` was given: make the image available to the cluster's nodes."""
    network: str = "default"
    """Network mode for RUN steps: ``default``, ``host`` or ``none``."""
    add_hosts: tuple[tuple[str, str], ...] = ()
    """Extra ``/etc/hosts`` entries for RUN steps, as (hostname, IP) pairs."""
    allow: tuple[str, ...] = ()
    """Entitlements granted; ``network.host`` is added for ``--network host``."""
    progress: str = "auto"
    """Progress mode, one of ``PROGRESS_MODES``; ``quiet`` when ``-q`` was given."""
    quiet: bool = False
    """``-q``: no progress, print only the image digest on stdout."""
    iidfile: str | None = None
    """File to write the image (config or index) digest to."""
    metadata_file: str | None = None
    """File to write the build result metadata to, as JSON."""
    debug: bool = False
    """Show tracebacks and debug lines."""
    buildkit_host: str | None = None
    """``unix://`` or ``tcp://`` address of a standing buildkitd; None means use the cluster."""
    tls_ca_cert: str | None = None
    """CA certificate for a tcp:// daemon."""
    tls_cert: str | None = None
    """Client certificate for a tcp:// daemon (given with ``tls_key``)."""
    tls_key: str | None = None
    """Client key for a tcp:// daemon (given with ``tls_cert``)."""
    tls_server_name: str | None = None
    """Server name to verify instead of the address's host."""
    builder: str = DEFAULT_BUILDER
    """Builder (buildkitd Deployment) name in the cluster."""
    registry_secret: str | None = None
    """Kubernetes Secret with registry credentials; None means the builder's name."""
    namespace: str | None = None
    """Kubernetes namespace of the builder; None means the kubeconfig context's."""
    kubeconfig: str | None = None
    """Kubeconfig file; None means ``$KUBECONFIG`` or the default location."""
    kube_context: str | None = None
    """Kubeconfig context to use; None means the current context."""
    mode: str = "auto"
    """``--mode``: auto, native, cross or qemu (how foreign platforms are built)."""
    qemu_image: str = DEFAULT_QEMU_IMAGE
    """Image that installs binfmt emulators on a node."""
    transport: str = "kubectl"
    """Exec bridge to the builder pod: ``kubectl`` (child process) or ``websocket``."""


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


def _choice(value: str, flag: str, choices: Sequence[str]) -> str:
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
        merged.append(OutputSpec(out.type, MappingProxyType(attrs), out.dest))
    for out in merged:
        if out.pushes and not out.attrs.get("name"):
            raise UsageError(
                "nothing to push: the image has no name",
                "tag it with -t REGISTRY/NAME[:TAG] or pass --output type=image,name=...",
            )
    if sum(out.dest == "-" for out in merged) > 1:
        raise UsageError("only one --output can write to stdout (dest=-)", None)
    # The same pushing output given twice (--push plus type=registry) must not push twice.
    return tuple(dict.fromkeys(merged))


def _outputs(flags: BuildFlags, tags: Sequence[str]) -> tuple[OutputSpec, ...]:
    outputs = [parse_output(value) for value in flags.output]
    if flags.quiet and any(out.dest == "-" for out in outputs):
        raise UsageError(
            "-q prints the digest on stdout, which --output dest=- also uses",
            "write the output to a file or drop -q",
        )
    return _merge_push(outputs, flags.push, tags)


def _network(flags: BuildFlags) -> tuple[str, tuple[str, ...]]:
    """The network mode and the entitlements, with network.host implied by --network host."""
    network = _choice(flags.network or "default", "--network", NETWORK_MODES)
    allow = [_choice(value, "--allow", ENTITLEMENTS) for value in _items(flags.allow)]
    if network == "host":
        allow.append("network.host")
    return network, tuple(dict.fromkeys(allow))


def _cache_to(values: Iterable[str], build_args: Mapping[str, str]) -> tuple[CacheSpec, ...]:
    specs = [parse_cache(value, export=True) for value in values]
    # docker and buildx read --build-arg BUILDKIT_INLINE_CACHE=1 as a request for inline cache.
    inline = build_args.get("BUILDKIT_INLINE_CACHE", "").strip().lower() in ("1", "t", "true")
    if inline and not any(spec.type == "inline" for spec in specs):
        specs.append(CacheSpec("inline", _EMPTY))
    return tuple(specs)


def _progress(flags: BuildFlags, environ: Mapping[str, str]) -> str:
    if flags.quiet:
        if flags.progress not in (None, "auto", "quiet"):
            raise UsageError(f"-q cannot be combined with --progress {flags.progress}", "drop one of them")
        return "quiet"
    value = flags.progress or environ.get("BUILDKIT_PROGRESS") or "auto"
    return _choice(value, "--progress", PROGRESS_MODES)


_Spec = TypeVar("_Spec", SecretSpec, SSHSpec)


def _last_per_id(specs: Iterable[_Spec]) -> tuple[_Spec, ...]:
    # Docker keeps the last value given for an id; keep the first position for stable order.
    return tuple({spec.id: spec for spec in specs}.values())


def build_options(flags: BuildFlags, environ: Mapping[str, str]) -> BuildOptions:
    """Parse and validate the raw flags of one ``kubectl build`` invocation.

    Args:
        flags: the flag values as typed.
        environ: the environment (``DOCKER_DEFAULT_PLATFORM``, ``BUILDKIT_PROGRESS``,
            ``BUILDKIT_HOST``, ``BUILDKIT_BUILDER``, bare ``--build-arg``/``--secret`` keys).

    Returns:
        The validated options.

    Raises:
        UsageError: a flag is malformed or flags contradict each other.
        ContextError: the context directory or the Dockerfile does not exist.
    """
    context, dockerfile = resolve_context(flags.context, flags.file)
    tags = tuple(validate_tag(tag) for tag in flags.tag)
    network, allow = _network(flags)
    build_args = parse_build_args(flags.build_arg, environ)
    host = check_daemon_address(flags.buildkit_host or environ.get("BUILDKIT_HOST") or None)
    check_tls_files(host, flags.tlscacert, flags.tlscert, flags.tlskey)
    return BuildOptions(
        context=context,
        dockerfile=dockerfile,
        tags=tags,
        platforms=parse_platforms(flags.platform, environ),
        build_args=MappingProxyType(build_args),
        labels=MappingProxyType(parse_labels(flags.label)),
        target=flags.target or None,
        no_cache=flags.no_cache,
        no_cache_filter=tuple(dict.fromkeys(_items(flags.no_cache_filter))),
        pull=flags.pull,
        secrets=_last_per_id(parse_secret(v, environ) for v in flags.secret),
        ssh=_last_per_id(parse_ssh(v, environ) for v in flags.ssh),
        cache_from=tuple(parse_cache(v, export=False) for v in flags.cache_from),
        cache_to=_cache_to(flags.cache_to, build_args),
        outputs=_outputs(flags, tags),
        push=flags.push,
        load=flags.load,
        network=network,
        add_hosts=parse_add_hosts(flags.add_host),
        allow=allow,
        progress=_progress(flags, environ),
        quiet=flags.quiet,
        iidfile=flags.iidfile,
        metadata_file=flags.metadata_file,
        debug=flags.debug,
        builder=flags.builder or environ.get("BUILDKIT_BUILDER") or DEFAULT_BUILDER,
        registry_secret=flags.registry_secret,
        namespace=flags.namespace,
        kubeconfig=flags.kubeconfig,
        kube_context=flags.kube_context,
        mode=_choice(flags.mode or environ.get("KUBECTL_BUILD_MODE") or "auto", "--mode",
                     ("auto", "native", "cross", "qemu")),
        qemu_image=flags.qemu_image or DEFAULT_QEMU_IMAGE,
        transport=_choice(flags.transport or environ.get("KUBECTL_BUILD_TRANSPORT") or "kubectl",
                          "--transport", ("kubectl", "websocket")),
        buildkit_host=host,
        tls_ca_cert=flags.tlscacert,
        tls_cert=flags.tlscert,
        tls_key=flags.tlskey,
        tls_server_name=flags.tlsservername,
    )


def _items(values: Iterable[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]

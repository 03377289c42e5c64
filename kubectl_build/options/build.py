"""Build options: the command line parsed and validated into frozen dataclasses.

Pure: nothing here talks to a daemon, a registry or a cluster. It reads only the
environment mapping passed in and checks that local paths named on the command line
(context, Dockerfile, secret and TLS files) exist, so bad input fails before any
connection. ``kubectl_build.cli.commands`` fills a ``BuildFlags`` with the raw flag values and
``build_options`` turns it into the ``BuildOptions`` every later stage consumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from kubectl_build.options.annotations import Annotation, parse_annotations
from kubectl_build.options.attests import Attest, parse_attests
from kubectl_build.options.call import CallFunc, parse_call
from kubectl_build.options.contexts import NamedContext, parse_build_context, unique_names
from kubectl_build.options.flags import BuildFlags, _no_mapping
from kubectl_build.options.resources import parse_shm_size, ulimit_attr
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
from kubectl_build.options.values import (
    ENTITLEMENTS,
    NETWORK_MODES,
    PROGRESS_MODES,
    cache_to,
    choice,
    items,
    last_per_id,
    network,
    outputs,
    parse_add_hosts,
    parse_build_args,
    parse_labels,
    progress,
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

DEFAULT_BUILDER = "buildkit"
"""Builder name when neither ``--builder`` nor ``BUILDKIT_BUILDER`` is given."""
DEFAULT_QEMU_IMAGE = "docker.io/tonistiigi/binfmt:latest"
"""What buildx users install emulators with; the test bed serves a local stand-in."""


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
    attests: tuple[Attest, ...] = ()
    """Attestations asked for (``--attest``, ``--sbom``, ``--provenance``), one per type."""
    annotations: tuple[Annotation, ...] = ()
    """``--annotation`` values, for image/oci/docker outputs and the client-merged index."""
    build_contexts: tuple[NamedContext, ...] = ()
    """``--build-context`` values, one per name (the last wins), oci-layout ones unresolved."""
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
    shm_size: int = 0
    """Bytes of /dev/shm for RUN steps; 0 leaves the daemon's default."""
    ulimits: str = ""
    """RUN steps' resource limits as the frontend reads them (``nofile=1024:2048,...``)."""
    allow: tuple[str, ...] = ()
    """Entitlements granted; ``network.host`` is added for ``--network host``."""
    call: CallFunc | None = None
    """``--call``/``--check``: a frontend subrequest instead of the build."""
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
    # Checked in the order docker reports them: the context, tags, network, then the daemon.
    context, dockerfile = resolve_context(flags.context, flags.file)
    tags = tuple(validate_tag(tag) for tag in flags.tag)
    network(flags)
    build_args = parse_build_args(flags.build_arg, environ)
    host = check_daemon_address(flags.buildkit_host or environ.get("BUILDKIT_HOST") or None)
    check_tls_files(host, flags.tlscacert, flags.tlscert, flags.tlskey)
    options = BuildOptions(
        context=context,
        dockerfile=dockerfile,
        tags=tags,
        platforms=parse_platforms(flags.platform, environ),
        build_args=MappingProxyType(build_args),
        labels=MappingProxyType(parse_labels(flags.label)),
        buildkit_host=host,
        tls_ca_cert=flags.tlscacert,
        tls_cert=flags.tlscert,
        tls_key=flags.tlskey,
        tls_server_name=flags.tlsservername,
    )
    return _with_cluster_fields(_with_solve_fields(options, flags, environ), flags, environ)


def _with_solve_fields(options: BuildOptions, flags: BuildFlags,
                       environ: Mapping[str, str]) -> BuildOptions:
    """What the solve is asked besides the context: steps, secrets, cache, output files."""
    mode, allow = network(flags)
    exports = outputs(flags, options.tags)
    return replace(
        options,
        target=flags.target or None,
        no_cache=flags.no_cache,
        no_cache_filter=tuple(dict.fromkeys(items(flags.no_cache_filter))),
        pull=flags.pull,
        secrets=last_per_id(parse_secret(v, environ) for v in flags.secret),
        ssh=last_per_id(parse_ssh(v, environ) for v in flags.ssh),
        attests=parse_attests(flags.attest, flags.sbom, flags.provenance),
        annotations=parse_annotations(flags.annotation),
        build_contexts=unique_names(tuple(parse_build_context(v) for v in flags.build_context)),
        cache_from=tuple(parse_cache(v, export=False) for v in flags.cache_from),
        cache_to=cache_to(flags.cache_to, options.build_args),
        outputs=exports,
        push=flags.push,
        load=flags.load or any(out.loads for out in exports),
        network=mode,
        add_hosts=parse_add_hosts(flags.add_host),
        shm_size=parse_shm_size(flags.shm_size) if flags.shm_size else 0,
        ulimits=ulimit_attr(flags.ulimit),
        allow=allow,
        call=parse_call(flags.call, flags.check),
        progress=progress(flags, environ),
        quiet=flags.quiet,
        iidfile=flags.iidfile,
        metadata_file=flags.metadata_file,
        debug=flags.debug,
    )


def _with_cluster_fields(options: BuildOptions, flags: BuildFlags,
                         environ: Mapping[str, str]) -> BuildOptions:
    """Where in the cluster the build runs and how it reaches the builder."""
    return replace(
        options,
        # BUILDX_BUILDER too: CI files written for buildx name their builder with it
        builder=flags.builder or environ.get("BUILDKIT_BUILDER") or environ.get("BUILDX_BUILDER")
        or DEFAULT_BUILDER,
        registry_secret=flags.registry_secret,
        namespace=flags.namespace,
        kubeconfig=flags.kubeconfig,
        kube_context=flags.kube_context,
        mode=choice(flags.mode or environ.get("KUBECTL_BUILD_MODE") or "auto", "--mode",
                    ("auto", "native", "cross", "qemu")),
        qemu_image=flags.qemu_image or DEFAULT_QEMU_IMAGE,
        transport=choice(flags.transport or environ.get("KUBECTL_BUILD_TRANSPORT") or "kubectl",
                         "--transport", ("kubectl", "websocket")),
    )

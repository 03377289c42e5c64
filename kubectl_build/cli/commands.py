"""The click commands: ``kubectl build`` and ``kubectl buildkit``.

Only flag declarations and hand-offs live here. Everything heavy (grpc, protobuf,
kubernetes, the build itself) is imported inside command bodies so ``--help`` stays fast.
Errors are raised, never printed: ``kubectl_build.__main__`` turns them into one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kubectl_build import __version__
from kubectl_build.cli.compat import COMPAT_OPTIONS
from kubectl_build.cli.imagetools import imagetools
from kubectl_build.console import Console

# Fixed widths make the help text identical on every terminal, which lets
# __main__ answer a bare --help without importing click at all.
CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "terminal_width": 80,
    "max_content_width": 80,
}
FC = TypeVar("FC", bound=Callable[..., Any])
BUILD_PROG = "kubectl build"
BUILDKIT_PROG = "kubectl buildkit"


def _multi(*names: str, metavar: str, help: str) -> Any:  # noqa: A002 - click's own name
    return click.option(*names, multiple=True, metavar=metavar, help=help)


_BUILD_OPTIONS = [
    click.option(
        "-f", "--file", metavar="PATH", help="Dockerfile (default: PATH/Dockerfile; - reads stdin)."
    ),
    _multi("-t", "--tag", metavar="NAME[:TAG]", help="Image name and tag; repeatable."),
    _multi(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="Target platforms, comma list or repeated; 'local' is this machine "
        "[env DOCKER_DEFAULT_PLATFORM].",
    ),
    _multi(
        "--build-arg",
        metavar="KEY[=VALUE]",
        help="Build-time variable; a bare KEY takes the environment's value.",
    ),
    _multi("--label", metavar="KEY=VALUE", help="Image label; repeatable."),
    _multi(
        "--annotation",
        metavar="[TYPE[PLATFORM]:]KEY=VALUE",
        help="OCI annotation; TYPE manifest (default), index, manifest-descriptor or index-descriptor.",
    ),
    click.option("--target", metavar="STAGE", help="Build this stage instead of the last one."),
    click.option("--no-cache", is_flag=True, help="Do not use the build cache."),
    _multi("--no-cache-filter", metavar="STAGE", help="Do not use the build cache for these stages."),
    click.option("--pull", is_flag=True, help="Always check for newer base images."),
    _multi("--secret", metavar="id=ID[,src=FILE|env=VAR]", help="Secret for RUN --mount=type=secret."),
    _multi(
        "--ssh",
        metavar="default|ID[=SOCKET|KEY,...]",
        help="SSH agent or keys for RUN --mount=type=ssh.",
    ),
    _multi(
        "--build-context",
        metavar="NAME=VALUE",
        help="Extra named context: a directory, docker-image://REF, "
        "oci-layout://DIR[:TAG][@DIGEST] or a URL.",
    ),
    _multi("--attest", metavar="type=sbom|provenance,...", help="Attestation to add to the image."),
    click.option("--sbom", metavar="true|false|KEY=VALUE", is_flag=False, flag_value="true",
                 help="SBOM attestation (shorthand for --attest type=sbom)."),
    click.option("--provenance", metavar="true|false|mode=min|max", is_flag=False, flag_value="true",
                 help="Provenance attestation [default: mode=min where the image is exported]."),
    _multi("--cache-from", metavar="REF|type=...", help="Cache source, e.g. type=registry,ref=REF."),
    _multi(
        "--cache-to",
        metavar="type=...",
        help="Cache destination, e.g. type=registry,ref=REF,mode=max or type=inline.",
    ),
    _multi(
        "-o",
        "--output",
        metavar="type=...|DIR",
        help="Output: type=local|tar|oci|docker,dest=PATH (- is stdout), "
        "type=image,name=NAME[,push=true], type=registry, or a directory.",
    ),
    click.option(
        "--push",
        is_flag=True,
        help="Push the image to its registry (shorthand for --output type=registry).",
    ),
    click.option("--load", is_flag=True, help="Make the image available to the cluster's nodes."),
    click.option("--network", metavar="default|host|none", help="Network mode for RUN steps."),
    _multi("--add-host", metavar="HOST:IP", help="Add an /etc/hosts entry for RUN steps."),
    click.option("--shm-size", metavar="SIZE", help="Size of /dev/shm for RUN steps, e.g. 64m."),
    _multi("--ulimit", metavar="NAME=SOFT[:HARD]", help="Resource limit for RUN steps, e.g. nofile=1024."),
    _multi("--allow", metavar="ENTITLEMENT", help="Allow network.host or security.insecure."),
    click.option("--call", metavar="check|outline|targets[,format=json]",
                 help="Ask the Dockerfile frontend instead of building: lint findings, build "
                 "arguments and secrets, or targets."),
    click.option("--check", is_flag=True, help="Lint the Dockerfile, build nothing (--call check)."),
    click.option(
        "--progress",
        metavar="auto|tty|plain|quiet|rawjson|none",
        help="Progress output [env BUILDKIT_PROGRESS; default auto].",
    ),
    click.option("-q", "--quiet", is_flag=True, help="No progress; print only the image digest."),
    click.option("--iidfile", metavar="FILE", help="Write the image digest to FILE."),
    click.option("--metadata-file", metavar="FILE", help="Write build result metadata to FILE as JSON."),
    click.option("--debug", is_flag=True, help="Show debug output and tracebacks."),
    click.option(
        "--buildkit-host",
        metavar="ADDR",
        help="Use the buildkitd at unix://PATH or tcp://HOST:PORT instead of the cluster "
        "[env BUILDKIT_HOST].",
    ),
    click.option("--tlscacert", metavar="FILE", help="CA certificate for a tcp:// buildkitd."),
    click.option("--tlscert", metavar="FILE", help="Client certificate for a tcp:// buildkitd."),
    click.option("--tlskey", metavar="FILE", help="Client key for a tcp:// buildkitd."),
    click.option("--tlsservername", metavar="NAME", help="Server name to verify for a tcp:// buildkitd."),
    click.option(
        "--builder",
        metavar="NAME",
        help="Builder name [env BUILDKIT_BUILDER, BUILDX_BUILDER; default buildkit].",
    ),
    click.option(
        "--registry-secret",
        metavar="NAME",
        help="Kubernetes Secret with registry credentials (default: the builder's name).",
    ),
    click.option("-n", "--namespace", metavar="NAME", help="Kubernetes namespace of the builder."),
    click.option(
        "--mode",
        type=click.Choice(["auto", "native", "cross", "qemu"]),
        help="How foreign platforms are built: native nodes, cross-compilation or QEMU "
        "[env KUBECTL_BUILD_MODE; default auto: the fastest that works].",
    ),
    click.option(
        "--qemu-image",
        metavar="IMAGE",
        help="Image that installs QEMU emulators on a node when a platform needs them "
        "[default docker.io/tonistiigi/binfmt:latest].",
    ),
    click.option(
        "--transport",
        type=click.Choice(["kubectl", "websocket"]),
        help="Exec bridge to the builder pod [env KUBECTL_BUILD_TRANSPORT; default kubectl].",
    ),
    click.option("--kubeconfig", metavar="FILE", help="Kubeconfig file."),
    click.option("--context", "kube_context", metavar="NAME", help="Kubeconfig context."),
]


def _with_build_options(func: Any) -> Any:
    for option in reversed([*_BUILD_OPTIONS, *COMPAT_OPTIONS]):
        func = option(func)
    return func


@click.command(
    name="build",
    context_settings=CONTEXT_SETTINGS,
    short_help="Build a container image with BuildKit.",
)
@click.argument("context", metavar="PATH | URL | -")
@_with_build_options
@click.version_option(__version__, "--version", prog_name="kubectl-build", message="%(prog)s %(version)s")
def build(**flags: Any) -> int:
    """Build a container image from PATH, URL or - (stdin) with BuildKit.

    By default the build runs on a BuildKit builder in the current Kubernetes
    cluster; --buildkit-host builds on a standing buildkitd instead.
    """
    from kubectl_build.cli.invocation import Invocation, run_build
    from kubectl_build.options.build import BuildFlags, build_options

    given = click.get_current_context().obj
    # Tests and embedders call the click command without the entry's context object.
    invocation = given if isinstance(given, Invocation) else Invocation()
    return run_build(build_options(BuildFlags(**flags), os.environ), invocation)


def render_build_help() -> str:
    """The ``kubectl build --help`` text, exactly as click prints it."""
    with click.Context(build, info_name=BUILD_PROG, **CONTEXT_SETTINGS) as ctx:
        return build.get_help(ctx)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    # kubectl accepts its global flags before or after the subcommand; the later wins.
    if value is not None and param.name:
        ctx.find_root().meta.setdefault("kube", {})[param.name] = value


_KUBE_FLAGS: list[tuple[tuple[str, ...], str, str]] = [
    (("--kubeconfig", "kubeconfig"), "FILE", "Kubeconfig file [env KUBECONFIG]."),
    (("--context", "context"), "NAME", "Kubeconfig context."),
    (("--cluster", "cluster"), "NAME", "Kubeconfig cluster."),
    (("--user", "user"), "NAME", "Kubeconfig user."),
    (("-n", "--namespace", "namespace"), "NAME", "Namespace (default: the context's)."),
    (("--request-timeout", "request_timeout"), "DURATION", "Timeout of each API request [30s]."),
]


def _kube_options(func: FC) -> FC:
    for decls, metavar, help_text in reversed(_KUBE_FLAGS):
        func = click.option(*decls, metavar=metavar, help=help_text, callback=_remember,
                            expose_value=False)(func)
    return click.option("--debug", is_flag=True, expose_value=False, help="Show tracebacks.")(func)


def _kube() -> Any:
    """KubeOptions from the global flags, wherever they were given."""
    from kubectl_build.kube.config import KubeOptions

    given = dict(click.get_current_context().find_root().meta.get("kube", {}))
    timeout = given.pop("request_timeout", None)
    seconds = _seconds("--request-timeout", timeout) if timeout is not None else 30.0
    return KubeOptions(**given, request_timeout=seconds)


@click.group(name="buildkit", context_settings=CONTEXT_SETTINGS)
@_kube_options
@click.version_option(__version__, "--version", prog_name="kubectl-buildkit", message="%(prog)s %(version)s")
def buildkit() -> None:
    """Manage BuildKit builders in a Kubernetes cluster.

    The kubectl flags (--kubeconfig, --context, -n ...) go before or after the command.
    """


def _timeout_option(default: str) -> Callable[[FC], FC]:
    return click.option("--timeout", metavar="DURATION", default=default, show_default=True,
                        help="How long to wait for pods (90s, 5m).")


def _seconds(flag: str, text: str) -> float:
    from kubectl_build.cli.builders import parse_duration

    return parse_duration(flag, text) / 1e9


# The builder `kubectl build` uses by default, so both commands agree without flags.
_NAME = click.argument("name", metavar="[NAME]", required=False, default="buildkit",
                       envvar=["BUILDKIT_BUILDER", "BUILDX_BUILDER"])


@buildkit.command(name="create", context_settings=CONTEXT_SETTINGS)
@_NAME
@click.option("--image", metavar="IMAGE", help="buildkitd image [default: docker.io/moby/buildkit:v0.34.2].")
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True,
              help="Pods (containerd worker: at most one per node).")
@click.option("--worker", type=click.Choice(["auto", "containerd", "runc", "rootless"]), default="auto",
              show_default=True, help="auto = containerd where the nodes run containerd, else runc.")
@click.option("--node-selector", multiple=True, metavar="K=V[,K=V]", help="Pod node selector.")
@click.option("--tolerations", multiple=True, metavar="key=K,operator=O,value=V,effect=E[;...]",
              help="Pod tolerations.")
@click.option("--requests", multiple=True, metavar="cpu=..,memory=..", help="Container resource requests.")
@click.option("--limits", multiple=True, metavar="cpu=..,memory=..", help="Container resource limits.")
@click.option("--service-account", metavar="NAME", help="Pod service account.")
@click.option("--config", metavar="FILE", help="buildkitd.toml (mirrors, insecure registries, GC).")
@click.option("--custom-ca", metavar="FILE", help="PEM CA certificates buildkitd trusts (registries, git).")
@click.option("--env", multiple=True, metavar="K=V|K",
              help="Container environment, e.g. HTTPS_PROXY; a bare K copies yours.")
@click.option("--runtime", type=click.Choice(["auto", "containerd", "docker"]), default="auto",
              show_default=True, help="The nodes' container runtime.")
@click.option("--containerd-sock", metavar="PATH",
              help="Node's containerd socket [/run/containerd/containerd.sock, or what the nodes say: "
              "kubectl-build.dev/containerd-* annotations, k3s, microk8s].")
@click.option("--containerd-root", metavar="DIR", help="Node's containerd root [/var/lib/containerd].")
@click.option("--containerd-state", metavar="DIR", help="Node's containerd state dir [/run/containerd].")
@click.option("--containerd-namespace", metavar="NS", help="containerd namespace for images [k8s.io].")
@click.option("--host-network", is_flag=True,
              help="Use the node's network, to reach registries that listen on the node only.")
@click.option("--cache-size", metavar="SIZE", help="Persistent cache volume per replica (runc/rootless).")
@click.option("--cap-add", multiple=True, metavar="CAP",
              help="Rootless: add a capability (SYS_ADMIN where newuidmap needs it).")
@click.option("--force", is_flag=True, help="Update an existing builder whose spec differs.")
@_timeout_option("180s")
@_kube_options
def create(name: str, force: bool, timeout: str, **flags: Any) -> int:
    """Create builder NAME (default buildkit), or check an existing one against the flags.

    An existing builder with a different spec is an error that lists the differences;
    --force updates it.
    """
    from kubectl_build.cli import builders as builder_cmds

    spec = builder_cmds.spec_from_flags({"name": name, **flags}, os.environ)
    return builder_cmds.create(_kube(), spec, Console(), force=force, timeout=_seconds("--timeout", timeout))


@buildkit.command(name="ls", context_settings=CONTEXT_SETTINGS)
@click.option("-A", "--all-namespaces", is_flag=True, help="Builders of every namespace.")
@_kube_options
def ls(all_namespaces: bool) -> int:
    """List builders (NAME NAMESPACE WORKER PODS NODES IMAGE AGE)."""
    from kubectl_build.cli import builders as builder_cmds

    return builder_cmds.ls(_kube(), Console(), all_namespaces=all_namespaces)


@buildkit.command(name="inspect", context_settings=CONTEXT_SETTINGS)
@_NAME
@_kube_options
def inspect(name: str) -> int:
    """Show a builder's pods, nodes, BuildKit version and worker platforms."""
    from kubectl_build.cli import builders as builder_cmds

    return builder_cmds.inspect(_kube(), name, Console())


@buildkit.command(name="rm", context_settings=CONTEXT_SETTINGS)
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.option("--keep-cache", is_flag=True,
              help="containerd worker: leave its build cache in the nodes' containerd.")
@_timeout_option("120s")
@_kube_options
def rm(names: tuple[str, ...], keep_cache: bool, timeout: str) -> int:
    """Remove builders and wait for their pods to go.

    That is their workload, ConfigMap, cache volumes and, for the containerd worker, the
    build cache in the nodes' containerd.
    """
    from kubectl_build.cli import builders as builder_cmds

    return builder_cmds.rm(_kube(), names, Console(), timeout=_seconds("--timeout", timeout),
                           keep_cache=keep_cache)


@buildkit.command(name="prune", context_settings=CONTEXT_SETTINGS)
@_NAME
@click.option("-a", "--all", "prune_all", is_flag=True, help="Remove all cache, not only dangling records.")
@click.option("--keep-duration", metavar="DURATION", help="Keep cache used within this time (24h).")
@click.option("--keep-storage", metavar="SIZE", help="Keep this much cache (10GB).")
@_kube_options
def prune(name: str, prune_all: bool, keep_duration: str | None,
          keep_storage: str | None) -> int:
    """Remove build cache on every replica of builder NAME."""
    from kubectl_build.cli import builders as builder_cmds

    duration = builder_cmds.parse_duration("--keep-duration", keep_duration) if keep_duration else 0
    prune_options = builder_cmds.PruneOptions(
        all=prune_all, keep_duration_ns=duration,
        keep_bytes=builder_cmds.parse_size("--keep-storage", keep_storage) if keep_storage else 0,
    )
    return builder_cmds.prune(_kube(), name, prune_options, Console())


@buildkit.command(name="du", context_settings=CONTEXT_SETTINGS)
@_NAME
@_kube_options
def du(name: str) -> int:
    """Show build cache disk usage on every replica of builder NAME."""
    from kubectl_build.cli import builders as builder_cmds

    return builder_cmds.du(_kube(), name, Console())


@buildkit.command(name="version")
@click.option(
    "--buildkit-host",
    metavar="ADDR",
    help="Also show the BuildKit version of the buildkitd at ADDR [env BUILDKIT_HOST].",
)
def version(buildkit_host: str | None) -> int:
    """Print the client version and, given a buildkitd, its BuildKit version."""
    from kubectl_build.cli import version as versions

    return versions.report(Console(), buildkit_host or os.environ.get("BUILDKIT_HOST") or None)


@buildkit.command(name="completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for kubectl-build and kubectl-buildkit."""
    from kubectl_build.cli.completion import script

    Console().result(script(shell, programs()))


buildkit.add_command(imagetools)


def programs() -> dict[str, click.Command]:
    """The click command behind each program name, for shell completion."""
    return {"kubectl-build": build, "kubectl-buildkit": buildkit}

"""The click commands: ``kubectl build`` and ``kubectl buildkit``.

Only flag declarations and hand-offs live here. Everything heavy (grpc, protobuf,
kubernetes, the build itself) is imported inside command bodies so ``--help`` stays fast.
Errors are raised, never printed: ``kubectl_build.__main__`` turns them into one line.
"""

from __future__ import annotations

import os
from typing import Any

import click

from kubectl_build import __version__
from kubectl_build.console import Console
from kubectl_build.errors import KubectlBuildError

# Fixed widths make the help text identical on every terminal, which lets
# __main__ answer a bare --help without importing click at all.
CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "terminal_width": 80,
    "max_content_width": 80,
}
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
    _multi("--allow", metavar="ENTITLEMENT", help="Allow network.host or security.insecure."),
    click.option(
        "--progress",
        metavar="auto|tty|plain|quiet|rawjson",
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
    click.option("--builder", metavar="NAME", help="Builder name [env BUILDKIT_BUILDER; default buildkit]."),
    click.option(
        "--registry-secret",
        metavar="NAME",
        help="Kubernetes Secret with registry credentials (default: the builder's name).",
    ),
    click.option("-n", "--namespace", metavar="NAME", help="Kubernetes namespace of the builder."),
    click.option("--kubeconfig", metavar="FILE", help="Kubeconfig file."),
    click.option("--context", "kube_context", metavar="NAME", help="Kubeconfig context."),
]


# docker build flags of the legacy builder that BuildKit has no use for. They are
# accepted and ignored (hidden from --help), as BuildKit clients do, so existing
# `docker build` command lines keep working.
_IGNORED_FLAGS = ("--rm", "--force-rm", "--compress")
_IGNORED_VALUE_OPTIONS = (
    ("--isolation",),
    ("--security-opt",),
    ("-m", "--memory"),
    ("--memory-swap",),
    ("-c", "--cpu-shares"),
    ("--cpu-period",),
    ("--cpu-quota",),
    ("--cpuset-cpus",),
    ("--cpuset-mems",),
)
_COMPAT_OPTIONS = [
    *(click.option(flag, is_flag=True, hidden=True, expose_value=False) for flag in _IGNORED_FLAGS),
    *(
        click.option(*names, multiple=True, hidden=True, expose_value=False)
        for names in _IGNORED_VALUE_OPTIONS
    ),
]


def _with_build_options(func: Any) -> Any:
    for option in reversed([*_BUILD_OPTIONS, *_COMPAT_OPTIONS]):
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
    from kubectl_build.options import BuildFlags, build_options

    options = build_options(BuildFlags(**flags), os.environ)
    console = Console(debug=options.debug, quiet=options.quiet)
    # Imported here: the build pulls in grpc and protobuf, which --help must not pay for.
    from kubectl_build.build import run_build

    return run_build(options, console)


def render_build_help() -> str:
    """The ``kubectl build --help`` text, exactly as click prints it."""
    with click.Context(build, info_name=BUILD_PROG, **CONTEXT_SETTINGS) as ctx:
        return build.get_help(ctx)


@click.group(name="buildkit", context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="kubectl-buildkit", message="%(prog)s %(version)s")
def buildkit() -> None:
    """Manage BuildKit builders in a Kubernetes cluster."""


def _not_yet(verb: str) -> KubectlBuildError:
    return KubectlBuildError(
        f"kubectl buildkit {verb} is not implemented yet",
        "builders are created on first use by kubectl build",
    )


def _stub(verb: str, summary: str) -> None:
    # Unknown arguments are accepted so every invocation reaches the clear message.
    @buildkit.command(
        name=verb,
        help=summary,
        context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True},
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise _not_yet(verb)


for _verb, _summary in (
    ("create", "Create a builder."),
    ("ls", "List builders."),
    ("inspect", "Show a builder's pods, workers and platforms."),
    ("rm", "Remove a builder."),
    ("prune", "Remove build cache."),
    ("du", "Show build cache disk usage."),
):
    _stub(_verb, _summary)


@buildkit.command(name="version")
def version() -> None:
    """Print the client version."""
    Console().result(f"kubectl-build {__version__}")

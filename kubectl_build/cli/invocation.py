"""What one invocation of the CLI carries from its entry to the command that runs.

The entry module makes it for a build run in this process; the local agent's copy
makes it for the build it was handed, with the caller's start time and the exec the
agent kept ready. The build command reads it from click's context object and hands
it, with the parsed options, to ``run_build`` here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubectl_build.agent.warm_exec import WarmStart
from kubectl_build.console import Console
from kubectl_build.host.process import process_start

if TYPE_CHECKING:
    from kubectl_build.options.build import BuildOptions


@dataclass(frozen=True)
class Invocation:
    """The start time (--debug timings count from it) and the warm-path state."""

    started: float = field(default_factory=process_start)
    warm: WarmStart = field(default_factory=WarmStart)


def run_build(options: BuildOptions, invocation: Invocation) -> int:
    """Run the build, the early exec for the remembered pod started first."""
    console = Console(debug=options.debug, quiet=options.quiet, started=invocation.started)
    if options.buildkit_host or options.transport != "kubectl":
        # Only the kubectl bridge can adopt an early `kubectl exec`.
        return _run(options, console, invocation)
    warm = invocation.warm
    # An explicit --registry-secret must exist: it is read (and checked) before the build.
    warm.start(options.kubeconfig, options.kube_context, options.namespace, options.builder,
               read_secret=not options.registry_secret)
    try:
        return _run(options, console, invocation)
    finally:
        warm.abandon()


def _run(options: BuildOptions, console: Console, invocation: Invocation) -> int:
    # Imported here: the build pulls in grpc and protobuf, which --help must not pay for.
    from kubectl_build.run.build import run_build

    return run_build(options, console, invocation.warm)

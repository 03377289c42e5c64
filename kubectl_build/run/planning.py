"""The planning step of a build.

It reads what the planner needs (the Dockerfile, the builder's platforms, the nodes), asks
``planning`` for the plan and prints it.

The plan says, per requested platform, which builder builds it and how (native, cross,
qemu); its builder groups become the build's jobs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kubectl_build.console import Console
from kubectl_build.context.sources import LocalSources
from kubectl_build.dockerfile.analysis import Dockerfile, DockerfileError, parse_dockerfile
from kubectl_build.errors import KubectlBuildError
from kubectl_build.kube.nodes import Node
from kubectl_build.options.build import BuildOptions
from kubectl_build.planning.decide import (
    Ahead,
    decide,
    default_builder,
    plan_ahead,
    plan_lines,
    plan_request,
    split_blocker,
    wants_nodes,
)
from kubectl_build.planning.planner import DefaultBuilder, Plan, PlanError, PlanRequest
from kubectl_build.planning.solve import build_args
from kubectl_build.progress.display import resolve_mode
from kubectl_build.run.model import BuildRequest, Target

if TYPE_CHECKING:
    from kubectl_build.kube.config import Kube


def read_dockerfile(local: LocalSources) -> Dockerfile | None:
    """The parsed Dockerfile when it is a local file; None for a remote one.

    Raises:
        DockerfileError: the Dockerfile cannot be parsed.
    """
    if local.dockerfile_dir is None:
        return None
    path = os.path.join(local.dockerfile_dir, local.dockerfile_name)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    return parse_dockerfile(text)


def request_for(options: BuildOptions, local: LocalSources, build_args: Mapping[str, str],
                console: Console) -> PlanRequest | None:
    """The planner's request, None when there is nothing to plan.

    Nothing to plan: no ``--platform``, or the Dockerfile cannot be read here (remote,
    unparsable: BuildKit has the last word).
    """
    if not options.platforms:
        return None
    try:
        dockerfile = read_dockerfile(local)
    except DockerfileError as err:
        # BuildKit has the last word on Dockerfile syntax; it will report the real error.
        console.trace(f"planner skipped: {err.one_line()}; every platform on the default builder")
        return None
    if dockerfile is None:
        console.trace("planner skipped: the Dockerfile is not a local file; every platform "
                      "on the default builder in one solve")
        return None
    return plan_request(options, dockerfile, build_args)


@dataclass(frozen=True)
class PlanReaders:
    """How the planning step reads the cluster, each called only when the plan needs it."""

    builder: Callable[[], DefaultBuilder]
    """Reads the default builder's platforms."""
    nodes: Callable[[], tuple[Sequence[Node], str]]
    """Lists the nodes (the API) and names the default builder's node."""
    remembered: Callable[[], tuple[Sequence[Node], str] | None] = lambda: None
    """The nodes a recent build listed and the builder's node; None when there are none."""


def make_plan(options: BuildOptions, local: LocalSources, build_args: Mapping[str, str],
              readers: PlanReaders, console: Console) -> Plan | None:
    """The plan for a build with ``--platform``; None to build as asked on the default builder.

    Args:
        options: the build's options.
        local: where the Dockerfile is.
        build_args: build args as sent (they can change FROM lines).
        readers: read the default builder's platforms and the nodes (called only when a
            foreign platform could go native).
        console: for --debug lines.

    Raises:
        PlanError: a platform cannot be built as asked.
    """
    request = request_for(options, local, build_args, console)
    if request is None:
        return None
    default = readers.builder()
    found: Sequence[Node] = ()
    if wants_nodes(options, default):
        found, node = readers.nodes()
        default = replace(default, node=node or default.node)
    try:
        plan, kept = decide(request, default, found, split_blocker(options))
    except DockerfileError as err:
        console.trace(f"planner skipped: {err.one_line()}; every platform on the default builder")
        return None
    if kept is not None:
        console.info(f"building every platform on builder {default.name}: {kept}")
    plan.check()
    return plan


def make_plan_remembering(options: BuildOptions, local: LocalSources,
                          build_args: Mapping[str, str], readers: PlanReaders,
                          console: Console) -> Plan | None:
    """:func:`make_plan` from nodes a recent build listed, when there are some.

    That needs no API call; the nodes are listed afresh whenever that could change the
    outcome.

    Remembered nodes may be stale. A plan that keeps every platform on the default builder
    stands: a node that joined since costs speed, never correctness. A plan that sends a
    platform to another builder (which may be gone with its node), or a refusal (which a new
    node might lift), is made again from ``nodes()``.

    Args:
        options: the build's options.
        local: where the Dockerfile is.
        build_args: build args as sent.
        readers: ``remembered`` first, ``nodes`` when the remembered ones could mislead.
        console: for --debug lines.

    Raises:
        PlanError: a platform cannot be built as asked, by the fresh listing.
    """
    used: list[bool] = []

    def first() -> tuple[Sequence[Node], str]:
        known = readers.remembered()
        if known is None:
            return readers.nodes()
        used.append(True)
        console.trace("nodes as listed recently (no API call)")
        return known

    try:
        plan = make_plan(options, local, build_args, replace(readers, nodes=first), console)
    except PlanError:
        if not used:
            raise
        console.trace("the remembered nodes refuse the plan: listing the nodes")
        return make_plan(options, local, build_args, readers, console)
    if used and plan is not None and not all(group.default for group in plan.groups()):
        console.trace("the remembered nodes send a platform to another builder: listing the nodes")
        return make_plan(options, local, build_args, readers, console)
    return plan


def show_plan(plan: Plan, console: Console, progress: str) -> None:
    """Print the plan lines on stderr, except for machine-read progress (quiet, rawjson)."""
    if progress in ("quiet", "rawjson", "none"):
        for line in plan_lines(plan):
            console.trace(line)
        return
    for line in plan_lines(plan):
        console.info(line)



class PlanAhead:
    """Plans a build before the default builder is created.

    ``cluster.open_target`` calls it then, and it plans from the platform of the nodes the
    builder will land on: a refused plan (exit 2) leaves no builder, Deployment, ConfigMap
    or pod behind.
    """

    def __init__(self, request: BuildRequest) -> None:
        """Plan ``request`` when called."""
        self._request = request
        self.result: Ahead | None = None
        """The plan made, when the builder was about to be created and the planner ran."""

    def __call__(self, kube: Kube) -> None:
        """Plan with the nodes' platform; raises PlanError when it is refused."""
        from kubectl_build.kube.nodes import list_nodes
        from kubectl_build.platforms.platform import native_platform

        options, console = self._request.options, self._request.console
        request = request_for(options, self._request.local,
                              build_args(options, self._request.environ), console)
        if request is None:
            return
        try:
            nodes = list_nodes(kube)
        except KubectlBuildError as err:
            console.trace(f"nodes cannot be listed ({err.one_line()}): planning for every "
                          "platform the new builder could run on")
            nodes = ()
        try:
            self.result = plan_ahead(request, options.builder, nodes, split_blocker(options),
                                     native_platform())
        except DockerfileError as err:
            console.trace(f"planner skipped: {err.one_line()}; every platform on the default builder")
            return
        console.trace(f"planned before creating builder {options.builder}, for "
                      f"{self.result.builder.platform}: {'; '.join(self.result.plan.lines())}")


def plan_for(request: BuildRequest, target: Target, ahead: Ahead | None = None) -> Plan | None:
    """The per-platform plan (printed), or None when no --platform was given.

    Args:
        request: the build.
        target: the default builder, connected.
        ahead: the plan made before this invocation created the default builder: its
            nodes are reused, and ``ListWorkers`` is asked only when it could change it.
    """
    options, console = request.options, request.console
    if not options.platforms:
        return None  # the builder's own platform: nothing to decide, no call to make
    sources = _PlanSources(target, ahead, console)
    readers = PlanReaders(sources.builder, sources.nodes, sources.remembered)
    plan = make_plan_remembering(options, request.local, build_args(options, request.environ),
                                 readers, console)
    if plan is not None:
        show_plan(plan, console, resolve_mode(options.progress, console))
    return plan


class _PlanSources:
    """Where the planner's inputs come from: the plan made ahead, the warm entry, the API."""

    def __init__(self, target: Target, ahead: Ahead | None, console: Console) -> None:
        self._target, self._ahead, self._console = target, ahead, console
        self._cluster = target.cluster
        self._node = self._cluster.node if self._cluster is not None else ""

    def builder(self) -> DefaultBuilder:
        """The default builder's platforms (``ListWorkers`` unless the ahead plan holds)."""
        ahead, cluster = self._ahead, self._cluster
        if ahead is not None and not ahead.needs_workers(self._node):
            self._console.trace("the plan made before creating the builder holds: "
                                "ListWorkers not asked")
            return replace(ahead.builder, node=self._node)
        workers = cluster.workers if cluster is not None and cluster.workers is not None else None
        if workers is None:
            workers = tuple(self._target.clients[0].list_workers())
        reported = workers[0].platforms if workers else ()
        return default_builder(self._target.name, self._node, reported)

    def remembered(self) -> tuple[tuple[Node, ...], str] | None:
        """The nodes a recent build listed (no API call), None when there are none."""
        cluster = self._cluster
        known = cluster.remembered_nodes() if cluster is not None and self._ahead is None else None
        return None if known is None or cluster is None else (known, cluster.node)

    def nodes(self) -> tuple[tuple[Node, ...], str]:
        """The nodes as listed now, and the default builder's node."""
        cluster = self._cluster
        if cluster is None or cluster.kube is None:
            return (), ""
        from kubectl_build.kube.nodes import list_nodes

        found = self._ahead.nodes if self._ahead is not None else list_nodes(cluster.kube.get())
        if not found:
            self._console.trace("nodes cannot be listed: no native placement on other nodes")
        pod_node = cluster.pod_node()
        cluster.remember_nodes(found, pod_node)
        return found, pod_node

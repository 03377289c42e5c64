"""Decisions that shape a build's plan and its jobs, from data alone. Pure.

What the planner is asked (:func:`plan_request`), whether a build may be split across
builders (:func:`split_blocker`), the plan made before the default builder exists
(:func:`plan_ahead`), and the options of each builder group's solve (:func:`group_options`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from kubectl_build.dockerfile.analysis import Dockerfile
from kubectl_build.kube.nodes import Node
from kubectl_build.options.build import BuildOptions
from kubectl_build.planning.planner import (
    MODES,
    Cluster,
    DefaultBuilder,
    Mode,
    Plan,
    PlanRequest,
    plan_build,
)
from kubectl_build.platforms.matching import BUILDER_OS, PlatformFields, worker_runs
from kubectl_build.platforms.platform import Platform, native_platform

_MODES: Mapping[str, Mode] = {mode: mode for mode in MODES}


def foreign_platforms(platforms: Iterable[Platform], builder: DefaultBuilder) -> tuple[Platform, ...]:
    """The Linux platforms the default builder cannot run natively (candidates for other nodes)."""
    return tuple(p for p in platforms
                 if p.os == BUILDER_OS and not worker_runs(builder.platform, builder.reported, p))


def wants_nodes(options: BuildOptions, builder: DefaultBuilder) -> bool:
    """Whether the nodes matter for the plan.

    Only a foreign platform in auto or native mode can go to a node of its own
    architecture. Everything else skips the API (the warm path stays warm).
    """
    return options.mode in ("auto", "native") and bool(foreign_platforms(options.platforms, builder))


def split_blocker(options: BuildOptions) -> str | None:
    """Why this build cannot be split across builders, or None when it can.

    Each builder pushes by digest or loads its own nodes; a file, tarball or local
    directory output (or an exported cache) is one artefact only one builder can write.
    """
    for out in options.outputs:
        if out.type == "cacheonly" or (out.type == "image" and out.dest is None):
            continue
        return f"--output type={out.type} is written by a single builder"
    if options.cache_to:
        return "--cache-to is written by a single builder"
    return None


def plan_request(options: BuildOptions, dockerfile: Dockerfile,
                 build_args: Mapping[str, str]) -> PlanRequest:
    """The planner's view of the options."""
    return PlanRequest(options.platforms, dockerfile, _MODES.get(options.mode, "auto"),
                       MappingProxyType(dict(build_args)), options.target)


def plan_lines(plan: Plan) -> tuple[str, ...]:
    """What is printed before the build."""
    return tuple(f"plan: {line}" for line in plan.lines())


def decide(request: PlanRequest, builder: DefaultBuilder, nodes: Sequence[Node],
           blocker: str | None) -> tuple[Plan, str | None]:
    """The plan, kept on the default builder when the outputs cannot be split.

    Returns:
        The plan, and the reason it was kept on one builder (None when not needed).
    """
    plan = plan_build(request, Cluster(builder, tuple(nodes)))
    if plan.needs_merge and blocker is not None:
        return plan_build(request, Cluster(builder, ())), blocker
    return plan, None


def default_builder(name: str, node: str, reported: Sequence[PlatformFields]) -> DefaultBuilder:
    """The default builder from what its first worker reports (``ListWorkers``)."""
    return DefaultBuilder.from_workers(name, node, reported, native_platform())


# ---------------------------------------------------------------------------- planning ahead


GUESSED_PLATFORMS = (Platform("linux", "amd64"), Platform("linux", "arm64"))
"""Where a builder may land when the nodes cannot be listed, besides the client's own
platform and the requested ones: a plan is refused ahead only when none of them could
build it, so an unknown cluster never gets a refusal its real nodes would not give."""


def landing_platforms(nodes: Sequence[Node]) -> tuple[Platform, ...]:
    """The platforms a new default builder may be scheduled on, the most common first.

    Those of the ready, schedulable Linux nodes (its pod selects ``kubernetes.io/os=linux``);
    empty when no node is known.
    """
    counts: dict[Platform, int] = {}
    for node in nodes:
        if node.platform is not None and node.platform.os == BUILDER_OS and node.ready \
                and node.schedulable:
            counts[node.platform] = counts.get(node.platform, 0) + 1
    return tuple(sorted(counts, key=lambda p: (-counts[p], str(p))))


def candidate_platforms(nodes: Sequence[Node], requested: Iterable[Platform],
                        client: Platform) -> tuple[Platform, ...]:
    """The platforms to plan a not-yet-created default builder with, most likely first."""
    landing = landing_platforms(nodes)
    if landing:
        return landing
    guessed = (client, *GUESSED_PLATFORMS, *(p for p in requested if p.os == BUILDER_OS))
    return tuple(dict.fromkeys(p for p in guessed if p.os == BUILDER_OS))


@dataclass(frozen=True)
class Ahead:
    """The plan made before the default builder was created, from the nodes alone."""

    plan: Plan
    """The plan for ``builder``."""
    builder: DefaultBuilder
    """The builder as assumed: the platform of the nodes it lands on, ``reported=None``."""
    nodes: tuple[Node, ...]
    """The nodes listed (empty when they could not be)."""
    request: PlanRequest
    """What was planned."""

    def platform_of(self, node: str) -> Platform | None:
        """The platform of a listed node, None when it is unknown."""
        return next((n.platform for n in self.nodes if n.name == node), None)

    def needs_workers(self, node: str) -> bool:
        """Whether the created builder's ``ListWorkers`` could change the plan.

        It cannot when the builder landed on a node of the assumed platform, nothing is to
        be emulated (whether to install emulators depends on what it reports) and no
        requested platform is one a report could make native (a newer variant of its own
        architecture, a 32-bit companion).
        """
        native = self.builder.platform
        if self.platform_of(node) != native:
            return True
        if any(entry.emulated for entry in self.plan.platforms):
            return True
        return any(worker_runs(native, (p,), p) and not worker_runs(native, None, p)
                   for p in self.request.platforms)


def plan_ahead(request: PlanRequest, name: str, nodes: Sequence[Node], blocker: str | None,
               client: Platform) -> Ahead:
    """Plan for a default builder that does not exist yet, so a refused plan creates nothing.

    Args:
        request: what was asked.
        name: the default builder's name.
        nodes: the listed nodes (empty when they could not be listed).
        blocker: ``split_blocker`` of the options.
        client: this machine's platform (a guess when the nodes are unknown).

    Returns:
        The plan of the first candidate platform that can build every platform.

    Raises:
        PlanError: no platform the builder could land on can build them (the most likely
            one's error).
        DockerfileError: the Dockerfile cannot be analysed.
    """
    first: Ahead | None = None
    for platform in candidate_platforms(nodes, request.platforms, client):
        builder = DefaultBuilder(name, platform)
        plan, _ = decide(request, builder, nodes, blocker)
        ahead = Ahead(plan, builder, tuple(nodes), request)
        if not plan.failures:
            return ahead
        first = first or ahead
    assert first is not None  # never without candidates: GUESSED_PLATFORMS at least
    first.plan.check()
    return first



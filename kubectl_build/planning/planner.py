"""Pick, per requested platform, the fastest way to build it: native, cross or qemu. Pure.

* **native**: the default builder's own platform (or one its worker runs without
  emulation), else a node of that architecture, served by a per-architecture builder
  ``<builder>-<arch>[-<variant>]`` pinned there with a node selector.
* **cross**: the default builder, when every RUN the build of that platform needs executes
  on a platform the builder runs natively (``FROM --platform=$BUILDPLATFORM`` stages and
  their descendants); only files are produced for the target.
* **qemu**: the default builder with binfmt emulation for the RUN steps that execute on a
  foreign platform.

``--mode auto`` tries them in that order; ``native``, ``cross`` and ``qemu`` force one and
make an impossible choice an error for that platform rather than a silent fallback. A
platform the builder runs natively is always built natively: no mode makes that slower.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from kubectl_build.dockerfile.analysis import Analysis, Dockerfile, analyse
from kubectl_build.errors import UsageError
from kubectl_build.kube.nodes import Node
from kubectl_build.planning.groups import BuilderGroup
from kubectl_build.platforms.matching import (
    BUILDER_OS,
    PlatformFields,
    builder_suffix,
    can_emulate,
    node_selector,
    serves_natively,
    worker_platforms,
    worker_runs,
)
from kubectl_build.platforms.platform import Platform

Mode = Literal["auto", "native", "cross", "qemu"]
MODES: tuple[Mode, ...] = ("auto", "native", "cross", "qemu")
Strategy = Literal["native", "cross", "qemu"]


@dataclass(frozen=True)
class DefaultBuilder:
    """The builder every build uses unless a platform goes native elsewhere."""

    name: str
    """Builder name, also the prefix of per-architecture builders."""
    platform: Platform
    """Its own platform (BUILDPLATFORM): the first one ``ListWorkers`` reports, or the
    platform of the node it will be created on."""
    node: str = ""
    """The node its pod runs on; empty when not known yet."""
    reported: tuple[Platform, ...] | None = None
    """Every platform its workers report (native and emulated); None when not asked yet."""

    @classmethod
    def from_workers(cls, name: str, node: str, reported: Iterable[PlatformFields],
                     fallback: Platform) -> DefaultBuilder:
        """A builder from the platforms its first worker reports (``ListWorkers``).

        Args:
            name: builder name.
            node: the node its pod runs on.
            reported: ``WorkerRecord.platforms`` of its first worker.
            fallback: its platform when the worker reported none we know.
        """
        platforms = worker_platforms(reported)
        return cls(name, platforms[0] if platforms else fallback, node, platforms or None)


@dataclass(frozen=True)
class Cluster:
    """What the planner knows about the cluster."""

    builder: DefaultBuilder
    """The default builder."""
    nodes: tuple[Node, ...] = ()
    """Every node; empty when they could not be listed (no native placement then)."""


@dataclass(frozen=True)
class PlanRequest:
    """What the user asked for."""

    platforms: tuple[Platform, ...]
    """Requested platforms; empty means the default builder's own."""
    dockerfile: Dockerfile
    """The parsed Dockerfile."""
    mode: Mode = "auto"
    """``--mode``."""
    build_args: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """``--build-arg`` values (they can change FROM lines)."""
    target: str | None = None
    """``--target``; None for the last stage."""


@dataclass(frozen=True)
class PlatformPlan:
    """How one platform is built."""

    platform: Platform
    """The platform."""
    strategy: Strategy
    """native, cross or qemu."""
    builder: str
    """The builder that builds it."""
    nodes: tuple[str, ...]
    """Nodes it may run on (for a new builder: every usable node its selector matches)."""
    reason: str
    """Why, in a few words, for the plan line."""
    node_selector: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """Node selector of a per-architecture builder; empty for the default builder."""
    emulated: tuple[Platform, ...] = ()
    """Foreign platforms RUN steps execute on, needing binfmt emulation."""
    needs_emulator_install: bool = False
    """Whether some of ``emulated`` is missing from what the builder reported (always for a
    new per-architecture builder; never when the default builder's platforms are unknown)."""

    def line(self) -> str:
        """``linux/arm64: native on node-b (arm64 node)``."""
        where = ", ".join(self.nodes) or f"builder {self.builder}"
        return f"{self.platform}: {self.strategy} on {where} ({self.reason})"


@dataclass(frozen=True)
class PlanFailure:
    """A platform that cannot be built as asked."""

    platform: Platform
    """The platform."""
    message: str
    """What is wrong."""
    hint: str
    """What to do about it."""

    def line(self) -> str:
        """``windows/amd64: cannot build (...)``."""
        return f"{self.platform}: cannot build ({self.message})"


class PlanError(UsageError):
    """Some requested platform cannot be built."""


@dataclass(frozen=True)
class Plan:
    """One entry per requested platform, in the order requested."""

    entries: tuple[PlatformPlan | PlanFailure, ...]
    """Plans and failures."""

    @property
    def platforms(self) -> tuple[PlatformPlan, ...]:
        """The platforms that can be built."""
        return tuple(e for e in self.entries if isinstance(e, PlatformPlan))

    @property
    def failures(self) -> tuple[PlanFailure, ...]:
        """The platforms that cannot."""
        return tuple(e for e in self.entries if isinstance(e, PlanFailure))

    def lines(self) -> tuple[str, ...]:
        """The plan as shown before the build, one line per platform."""
        return tuple(entry.line() for entry in self.entries)

    def groups(self) -> tuple[BuilderGroup, ...]:
        """One solve per builder: the default builder first, then by builder name."""
        by_builder: dict[str, list[PlatformPlan]] = {}
        for plan in self.platforms:
            by_builder.setdefault(plan.builder, []).append(plan)
        ordered = sorted(by_builder.values(), key=lambda ps: (bool(ps[0].node_selector), ps[0].builder))
        return tuple(_group(plans) for plans in ordered)

    @property
    def needs_merge(self) -> bool:
        """Whether several builders share the build: each pushes by digest, the client merges."""
        return len({plan.builder for plan in self.platforms}) > 1

    def check(self) -> None:
        """Raise when any platform cannot be built.

        Raises:
            PlanError: naming every impossible platform, with the first hint.
        """
        failures = self.failures
        if failures:
            message = "; ".join(f"{f.platform}: {f.message}" for f in failures)
            raise PlanError(f"cannot build {message}", failures[0].hint)


def _group(plans: Sequence[PlatformPlan]) -> BuilderGroup:
    first = plans[0]
    nodes = sorted({node for plan in plans for node in plan.nodes})
    emulated = _unique(p for plan in plans for p in plan.emulated)
    return BuilderGroup(first.builder, not first.node_selector, tuple(p.platform for p in plans),
                        tuple(nodes), first.node_selector, emulated,
                        any(plan.needs_emulator_install for plan in plans))


def _unique(platforms: Iterable[Platform]) -> tuple[Platform, ...]:
    found = {str(p): p for p in platforms}
    return tuple(found[key] for key in sorted(found))


def plan_build(request: PlanRequest, cluster: Cluster) -> Plan:
    """Decide, per requested platform, where and how it is built.

    Raises:
        DockerfileError: the Dockerfile cannot be analysed.
        UsageError: ``--target`` names no stage.
    """
    platforms = request.platforms or (cluster.builder.platform,)
    return Plan(tuple(_plan_one(platform, request, cluster) for platform in platforms))


def builder_name(default: str, platform: Platform) -> str:
    """``<builder>-<arch>[-<variant>]``: the name of the per-architecture builder."""
    return f"{default}-{builder_suffix(platform)}"


def _analysis(platform: Platform, build: Platform, request: PlanRequest) -> Analysis:
    return analyse(request.dockerfile, platform, build, request.build_args, request.target)


def _native_nodes(platform: Platform, nodes: Sequence[Node]) -> tuple[Platform, tuple[str, ...]] | None:
    """The platform and names of the best usable node group that runs ``platform`` natively.

    Nodes are grouped by their own platform, since one builder (one node selector) serves
    one group; an exact match wins over a newer variant, then the lowest platform name.
    """
    groups: dict[Platform, list[str]] = {}
    for node in nodes:
        host = node.platform
        if (host is not None and host.os == BUILDER_OS and node.ready and node.schedulable
                and serves_natively(host, platform)):
            groups.setdefault(host, []).append(node.name)
    if not groups:
        return None
    best = min(groups, key=lambda host: (host != platform, str(host)))
    return best, tuple(sorted(groups[best]))


def _foreign(analysis: Analysis, native: Platform, reported: tuple[Platform, ...] | None
             ) -> tuple[Platform, ...]:
    """Platforms of RUN stages a builder of ``native`` cannot execute without emulation."""
    return _unique(s.platform for s in analysis.run_stages if not worker_runs(native, reported, s.platform))


def _no_nodes(platform: Platform, nodes: Sequence[Node]) -> str:
    """Why no node of ``platform``'s architecture was used, or "" when nodes are unknown."""
    if not nodes:
        return ""
    same = [n for n in nodes if n.platform is not None and serves_natively(n.platform, platform)]
    if platform.os != BUILDER_OS:
        return "builders run on Linux"
    if same:
        return f"no ready {platform.architecture} node"
    return f"no {platform.architecture} nodes"


def _run_why(analysis: Analysis, foreign: tuple[Platform, ...]) -> str:
    if not analysis.run_stages:
        return "no RUN for this platform"
    if not foreign:
        return "every RUN runs on the build platform"
    if foreign == (analysis.target_platform,):
        return "Dockerfile runs RUN on the target platform"
    stage = next(s for s in analysis.run_stages if s.platform in foreign)
    return f"stage {stage.label} runs RUN on {stage.platform}"


def _plan_one(platform: Platform, request: PlanRequest, cluster: Cluster) -> PlatformPlan | PlanFailure:
    builder = cluster.builder
    analysis = _analysis(platform, builder.platform, request)
    failure = _foreign_os_failure(platform, analysis)
    if failure is not None:
        return failure
    if worker_runs(builder.platform, builder.reported, platform):
        arch = builder.platform.architecture
        why = f"{arch} node" + ("" if serves_natively(builder.platform, platform)
                                else f" runs {platform.architecture} code")
        return _on_default(platform, "native", why, analysis, cluster)
    if request.mode in ("auto", "native"):
        native = _native_plan(platform, request, cluster)
        if native is not None or request.mode == "native":
            return native or PlanFailure(
                platform, f"--mode native: {_no_nodes(platform, cluster.nodes) or 'no nodes known'}",
                "use --mode auto to cross-compile or emulate instead")
    return _default_plan(platform, request, cluster, analysis)


_OS_NAMES = {"windows": "Windows", "darwin": "macOS", "freebsd": "FreeBSD"}


def _foreign_os_failure(platform: Platform, analysis: Analysis) -> PlanFailure | None:
    """Linux builders produce other systems' images and files only by copying (cross-compiling)."""
    stages = analysis.foreign_os_run_stages
    if not stages:
        return None
    lines = [str(line) for line in stages[0].run_lines]
    where = f"line{'s' if len(lines) > 1 else ''} {', '.join(lines)}"
    system = _OS_NAMES.get(stages[0].platform.os, stages[0].platform.os)
    return PlanFailure(platform, f"stage {stages[0].label} runs RUN on {stages[0].platform} at {where}, "
                       f"but Linux builders can only copy files into {system} images",
                       "build that stage FROM --platform=$BUILDPLATFORM, or drop RUN from it")


def _native_plan(platform: Platform, request: PlanRequest, cluster: Cluster) -> PlatformPlan | None:
    found = _native_nodes(platform, cluster.nodes)
    if found is None:
        return None
    host, nodes = found
    foreign = _foreign(_analysis(platform, host, request), host, None)
    label = f"{host.architecture} node{'s' if len(nodes) > 1 else ''}"
    # A new builder's emulators are unknown, so any foreign RUN means installing them.
    return PlatformPlan(platform, "native", builder_name(cluster.builder.name, host), nodes, label,
                        MappingProxyType(node_selector(host)), foreign, bool(foreign))


def _default_plan(platform: Platform, request: PlanRequest, cluster: Cluster,
                  analysis: Analysis) -> PlatformPlan | PlanFailure:
    builder = cluster.builder
    foreign = _foreign(analysis, builder.platform, builder.reported)
    run_why = _run_why(analysis, foreign)
    if request.mode == "cross" and foreign:
        return PlanFailure(platform, f"--mode cross: {run_why}",
                           "use --mode auto or qemu, or build RUN stages FROM --platform=$BUILDPLATFORM")
    if not foreign and request.mode != "qemu":
        return _on_default(platform, "cross", run_why, analysis, cluster)
    missing = [p for p in foreign if not can_emulate(p)]
    if missing:
        return PlanFailure(platform, f"{run_why}, and no emulator exists for {missing[0]}",
                           "build that stage FROM --platform=$BUILDPLATFORM")
    why = "; ".join(part for part in (
        "--mode qemu" if request.mode == "qemu" else _no_nodes(platform, cluster.nodes),
        run_why if foreign else "nothing runs under emulation") if part)
    return _on_default(platform, "qemu", why, analysis, cluster)


def _on_default(platform: Platform, strategy: Strategy, reason: str, analysis: Analysis,
                cluster: Cluster) -> PlatformPlan:
    builder = cluster.builder
    foreign = _foreign(analysis, builder.platform, builder.reported)
    reported = builder.reported
    install = reported is not None and any(p not in reported for p in foreign)
    return PlatformPlan(platform, strategy, builder.name, (builder.node,) if builder.node else (),
                        reason, MappingProxyType({}), foreign, install)

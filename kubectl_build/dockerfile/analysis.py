"""What a Dockerfile builds for one target platform: its stages, their platforms, their RUNs. Pure.

The multi-platform planner asks, for each requested platform: which stages does the build
of ``--target`` (or the last stage) really need, on which platform does each of them run,
and which of them execute ``RUN``? Answering needs what the Dockerfile frontend does before
it builds anything:

* global ``ARG``s (before the first FROM) with defaults and ``--build-arg`` overrides, plus
  the automatic platform ARGs (``TARGETPLATFORM``, ``BUILDARCH``...), which FROM lines see
  without declaring them and which no ``--build-arg`` overrides;
* ``FROM [--platform=P] image [AS name]`` with ``$VAR``/``${VAR...}`` substitution in both
  the image and the platform; an image naming an *earlier* stage continues that stage and
  inherits its platform, and without ``--platform`` a stage runs on the target platform;
* dependencies through ``COPY --from=<stage|index>`` and ``RUN --mount=...,from=<stage>``
  (values expanded with the stage's ARGs and ENVs; names may point at any stage, so cycles
  are detected). Anything that names no stage is an image and costs no stage.

ENV values set in a parent stage are not carried into a child stage's ``--from``
expansion: no Dockerfile we know of builds a stage name that way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from kubectl_build.dockerfile.parse import Dockerfile, Heredoc, Instruction, parse_dockerfile
from kubectl_build.dockerfile.words import DockerfileError, expand, split_words
from kubectl_build.errors import UsageError
from kubectl_build.platforms.platform import Platform, parse_platform

__all__ = ["Analysis", "Dockerfile", "DockerfileError", "Heredoc", "Instruction", "Stage",
           "analyse", "parse_dockerfile", "platform_args"]

_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Stage:
    """One stage as built for a given target and build platform."""

    index: int
    """Position among the stages, from 0 (what ``COPY --from=<index>`` counts)."""
    name: str
    """Lower-cased ``AS`` name; empty when unnamed."""
    base: str
    """The FROM image after substitution, or the name of the stage it continues."""
    base_stage: int | None
    """Index of the stage it continues (``FROM <stage>``), or None for an image."""
    platform: Platform
    """The platform its instructions, RUN included, execute on."""
    line: int
    """Line of its FROM."""
    run_lines: tuple[int, ...]
    """Lines of its RUN instructions."""
    dependencies: tuple[int, ...]
    """Stages it needs: its base stage and every ``--from`` stage, sorted."""

    @property
    def has_run(self) -> bool:
        """Whether the stage executes anything (RUN) rather than only copying files."""
        return bool(self.run_lines)

    @property
    def label(self) -> str:
        """How messages name the stage: its name, else ``#<index>``."""
        return self.name or f"#{self.index}"


@dataclass(frozen=True)
class Analysis:
    """The stages one build of the Dockerfile needs, for one target platform."""

    target_platform: Platform
    """The platform being built (TARGETPLATFORM)."""
    build_platform: Platform
    """The builder's own platform (BUILDPLATFORM)."""
    stages: tuple[Stage, ...]
    """The stages that are built, in Dockerfile order; unused ones are left out."""
    target: Stage
    """The ``--target`` stage, or the last one."""

    @property
    def run_stages(self) -> tuple[Stage, ...]:
        """The built stages that execute RUN."""
        return tuple(stage for stage in self.stages if stage.has_run)

    @property
    def foreign_os_run_stages(self) -> tuple[Stage, ...]:
        """Built stages that would RUN on another OS than Linux, which no Linux builder can do."""
        return tuple(stage for stage in self.run_stages if stage.platform.os != "linux")


@dataclass(frozen=True)
class _Context:
    dockerfile: Dockerfile
    target_platform: Platform
    auto: Mapping[str, str]
    build_args: Mapping[str, str]
    globals: Mapping[str, str]


def platform_args(target: Platform, build: Platform) -> dict[str, str]:
    """The automatic platform ARGs the frontend defines, for one target and build platform."""
    args: dict[str, str] = {}
    for prefix, platform in (("TARGET", target), ("BUILD", build)):
        args[f"{prefix}PLATFORM"] = str(platform)
        args[f"{prefix}OS"] = platform.os
        args[f"{prefix}ARCH"] = platform.architecture
        args[f"{prefix}VARIANT"] = platform.variant
    return args


def analyse(dockerfile: Dockerfile, target_platform: Platform, build_platform: Platform,
            build_args: Mapping[str, str] | None = None, target: str | None = None) -> Analysis:
    """The stages built for ``target_platform`` on a builder of ``build_platform``.

    Args:
        dockerfile: the parsed Dockerfile.
        target_platform: the platform being built.
        build_platform: the platform of the builder that builds it.
        build_args: ``--build-arg`` values.
        target: the ``--target`` stage name; None means the last stage.

    Raises:
        DockerfileError: a malformed FROM, an invalid ``--platform``, a duplicate stage name
            or stages depending on each other.
        UsageError: ``target`` names no stage.
    """
    auto = platform_args(target_platform, build_platform)
    args = MappingProxyType(dict(build_args or {}))
    ctx = _Context(dockerfile, target_platform, auto, args,
                   MappingProxyType(_global_scope(dockerfile, auto, args)))
    stages: list[Stage] = []
    refs: list[list[str]] = []
    for index, block in enumerate(dockerfile.stages):
        stage, stage_refs = _stage(index, block, stages, ctx)
        stages.append(stage)
        refs.append(stage_refs)
    stages = [_with_dependencies(stage, refs[stage.index], stages) for stage in stages]
    chosen = _target_index(stages, target)
    needed = _needed(stages, chosen)
    return Analysis(target_platform, build_platform,
                    tuple(stages[i] for i in sorted(needed)), stages[chosen])


def _arg_pairs(ins: Instruction, escape: str) -> list[tuple[str, str | None]]:
    """``ARG a=1 b`` as ``[("a", "1"), ("b", None)]``; defaults still raw."""
    pairs: list[tuple[str, str | None]] = []
    for word in split_words(ins.args, escape):
        name, sep, default = word.partition("=")
        if not _ARG_NAME.fullmatch(name):
            raise DockerfileError(f'Dockerfile line {ins.line}: invalid ARG name "{name}"')
        pairs.append((name, default if sep else None))
    return pairs


def _arg_value(name: str, default: str | None, ctx_auto: Mapping[str, str],
               build_args: Mapping[str, str], scope: Mapping[str, str],
               escape: str) -> str | None:
    """The value an ``ARG name[=default]`` takes; None when it stays unset."""
    if name in ctx_auto:
        return ctx_auto[name]
    if name in build_args:
        return build_args[name]
    if default is not None:
        return expand(default, scope, escape)
    return None


def _global_scope(dockerfile: Dockerfile, auto: Mapping[str, str],
                  build_args: Mapping[str, str]) -> dict[str, str]:
    """What FROM lines see: the automatic platform ARGs and the global ARGs."""
    scope = dict(auto)
    for ins in dockerfile.preamble:
        for name, default in _arg_pairs(ins, dockerfile.escape):
            value = _arg_value(name, default, auto, build_args, scope, dockerfile.escape)
            if value is not None:
                scope[name] = value
    return scope


def _from_words(ins: Instruction, escape: str) -> tuple[str, str]:
    """The raw image word and the lower-cased stage name of a FROM."""
    words = split_words(ins.args, escape)
    if len(words) == 1:
        return words[0], ""
    if len(words) == 3 and words[1].lower() == "as":
        return words[0], words[2].lower()
    raise DockerfileError(f"Dockerfile line {ins.line}: FROM takes IMAGE [AS NAME], got {ins.args!r}")


def _stage(index: int, block: Sequence[Instruction], earlier: Sequence[Stage],
           ctx: _Context) -> tuple[Stage, list[str]]:
    """One stage, plus the raw-expanded ``--from`` names it refers to."""
    head, escape = block[0], ctx.dockerfile.escape
    image, name = _from_words(head, escape)
    if name and any(stage.name == name for stage in earlier):
        raise DockerfileError(f'Dockerfile line {head.line}: duplicate stage name "{name}"')
    base = expand(image, ctx.globals, escape)
    # FROM continues a stage only when an earlier one has that name.
    base_stage = next((s.index for s in earlier if s.name and s.name == base.lower()), None)
    platform = _stage_platform(head, base_stage, earlier, ctx)
    refs, runs = _body(block[1:], ctx)
    stage = Stage(index, name, base, base_stage, platform, head.line, runs, ())
    return stage, refs


def _stage_platform(head: Instruction, base_stage: int | None, earlier: Sequence[Stage],
                    ctx: _Context) -> Platform:
    raw = head.flag("platform")
    value = expand(raw, ctx.globals, ctx.dockerfile.escape) if raw is not None else ""
    if value:
        try:
            return parse_platform(value)
        except UsageError as err:
            raise DockerfileError(f"Dockerfile line {head.line}: FROM --platform={value}: {err.message}",
                                  err.hint) from err
    if base_stage is not None:
        return earlier[base_stage].platform
    return ctx.target_platform


def _body(body: Sequence[Instruction], ctx: _Context) -> tuple[list[str], tuple[int, ...]]:
    """Walk a stage's instructions: the ``--from`` names and the RUN lines."""
    escape = ctx.dockerfile.escape
    scope: dict[str, str] = {}
    refs: list[str] = []
    runs: list[int] = []
    for ins in body:
        if ins.keyword == "ARG":
            _declare_args(ins, scope, ctx)
        elif ins.keyword == "ENV":
            scope.update(_env_pairs(ins, scope, escape))
        elif ins.keyword == "COPY" and (source := ins.flag("from")) is not None:
            refs.append(expand(source, scope, escape))
        elif ins.keyword == "RUN":
            runs.append(ins.line)
            refs.extend(_mount_sources(ins, scope, escape))
    return refs, tuple(runs)


def _declare_args(ins: Instruction, scope: dict[str, str], ctx: _Context) -> None:
    escape = ctx.dockerfile.escape
    for name, default in _arg_pairs(ins, escape):
        value = _arg_value(name, default, ctx.auto, ctx.build_args, scope, escape)
        if value is None and default is None:
            # A bare ARG inside a stage takes the global ARG of that name.
            value = ctx.globals.get(name)
        if value is not None:
            scope[name] = value


def _env_pairs(ins: Instruction, scope: Mapping[str, str], escape: str) -> dict[str, str]:
    words = split_words(ins.args, escape)
    if words and "=" not in words[0]:
        # The legacy form: ENV NAME the rest of the line.
        rest = ins.args[len(words[0]) :].strip()
        return {words[0]: expand(rest, scope, escape)}
    pairs: dict[str, str] = {}
    for word in words:
        name, _, value = word.partition("=")
        pairs[name] = expand(value, {**scope, **pairs}, escape)
    return pairs


def _mount_sources(ins: Instruction, scope: Mapping[str, str], escape: str) -> list[str]:
    """The ``from=`` of each ``RUN --mount``."""
    sources = []
    for key, value in ins.flags:
        if key != "mount":
            continue
        for item in expand(value, scope, escape).split(","):
            field_name, _, field_value = item.partition("=")
            if field_name.strip().lower() == "from" and field_value.strip():
                sources.append(field_value.strip())
    return sources


def _with_dependencies(stage: Stage, refs: Sequence[str], stages: Sequence[Stage]) -> Stage:
    deps = {stage.base_stage} if stage.base_stage is not None else set()
    for ref in refs:
        found = _stage_by_ref(ref, stages)
        if found == stage.index:
            raise DockerfileError(f"Dockerfile: stage {stage.label} copies from itself (--from={ref})")
        if found is not None:
            deps.add(found)
    return Stage(stage.index, stage.name, stage.base, stage.base_stage, stage.platform, stage.line,
                 stage.run_lines, tuple(sorted(deps)))


def _stage_by_ref(ref: str, stages: Sequence[Stage]) -> int | None:
    lowered = ref.lower()
    for stage in stages:
        if stage.name and stage.name == lowered:
            return stage.index
    if ref.isdigit() and int(ref) < len(stages):
        return int(ref)
    return None


def _target_index(stages: Sequence[Stage], target: str | None) -> int:
    if target is None:
        return len(stages) - 1
    for stage in stages:
        if stage.name and stage.name == target.lower():
            return stage.index
    names = ", ".join(stage.name for stage in stages if stage.name) or "none are named"
    raise UsageError(f'target stage "{target}" not found in the Dockerfile', f"stages: {names}")


def _needed(stages: Sequence[Stage], target: int) -> set[int]:
    """Every stage ``target`` depends on, itself included; a dependency cycle is an error."""
    done: set[int] = set()
    path: list[int] = []

    def visit(index: int) -> None:
        if index in path:
            cycle = " -> ".join(stages[i].label for i in [*path[path.index(index):], index])
            raise DockerfileError(f"Dockerfile: stages depend on each other: {cycle}")
        if index in done:
            return
        path.append(index)
        for dep in stages[index].dependencies:
            visit(dep)
        path.pop()
        done.add(index)

    visit(target)
    return done

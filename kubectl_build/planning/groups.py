"""Builder groups: the platforms one builder builds in one solve, and that solve's options.

Light on purpose (no Dockerfile analysis, no planner): every build has at least one group,
and a build without ``--platform`` must not pay for planning imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from kubectl_build.options.build import BuildOptions, OutputSpec
from kubectl_build.platforms.platform import Platform


@dataclass(frozen=True)
class BuilderGroup:
    """The platforms one builder builds in a single solve."""

    builder: str
    """Builder name."""
    default: bool
    """Whether it is the default builder (else it may need creating)."""
    platforms: tuple[Platform, ...]
    """Its platforms, in the order requested."""
    nodes: tuple[str, ...]
    """Nodes it runs on or may be placed on."""
    node_selector: Mapping[str, str] = field(hash=False)
    """Node selector for a per-architecture builder; empty for the default builder."""
    emulated: tuple[Platform, ...]
    """Foreign platforms its RUN steps need emulated."""
    needs_emulator_install: bool
    """Whether emulation must be installed first."""



def pushes(options: BuildOptions) -> bool:
    """Whether the build pushes an image."""
    return any(out.pushes for out in options.outputs)


def group_label(group: BuilderGroup) -> str:
    """The progress label of a builder's solve.

    BuildKit already puts the platform into step names of a multi-platform solve
    (``[linux/arm64 2/4] RUN make``); a single-platform solve gets it from the label.
    """
    if len(group.platforms) == 1:
        return f"{group.builder} {group.platforms[0]}"
    return group.builder


def group_description(group: BuilderGroup) -> str:
    """``builder buildkit-arm64 (linux/arm64)``: how errors name a group."""
    return f"builder {group.builder} ({', '.join(str(p) for p in group.platforms)})"


def group_options(options: BuildOptions, group: BuilderGroup, *, by_digest: bool,
                  outputs: Sequence[OutputSpec] | None = None) -> BuildOptions:
    """The options of one builder's solve.

    Args:
        options: the build's options.
        group: the builder and its platforms.
        by_digest: several builders push: each pushes by digest, untagged, and the client
            tags the merged index afterwards (so no tag ever names half a build).
        outputs: the outputs for this builder (its own load outputs), else ``options``'.
    """
    chosen = tuple(options.outputs if outputs is None else outputs)
    if by_digest:
        from kubectl_build.registry.index import by_digest_attrs


        chosen = tuple(OutputSpec(out.type, MappingProxyType(by_digest_attrs(out.attrs)), out.dest)
                       if out.pushes else out for out in chosen)
    # The files describing the result are written once, for the merged result.
    return replace(options, platforms=group.platforms, outputs=chosen, iidfile=None,
                   metadata_file=None)



"""Builders, nodes, Dockerfiles and options the planning tests share."""

from __future__ import annotations

from pathlib import Path

from kubectl_build.context.sources import LocalSources
from kubectl_build.kube.nodes import Node
from kubectl_build.options.build import (
    BuildFlags,
    BuildOptions,
    build_options,
    parse_platform,
    parse_platforms,
)
from kubectl_build.planning.planner import DefaultBuilder

AMD64, ARM64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")
BUILDER = DefaultBuilder("buildkit", AMD64, "node-a",
                         parse_platforms(["linux/amd64,linux/386,linux/arm64,linux/arm/v7"], {}))
"""The default builder: an amd64 node whose buildkitd also reports emulated arm64 and arm/v7."""
NODES = (Node("node-a", AMD64), Node("node-b", ARM64))
RUN_ON_TARGET = "FROM busybox\nRUN uname -m > /arch\n"
CROSS = ("FROM --platform=$BUILDPLATFORM golang AS build\nRUN go build -o /out/hello .\n"
         "FROM scratch\nCOPY --from=build /out/hello /hello\n")


def options_for(tmp_path: Path, dockerfile: str = RUN_ON_TARGET, **flags: object) -> BuildOptions:
    """Options of ``kubectl build <tmp_path>`` with these flags, the Dockerfile written there."""
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return build_options(BuildFlags(context=str(tmp_path), **flags), {})  # type: ignore[arg-type]


def local_sources(tmp_path: Path) -> LocalSources:
    """The context and Dockerfile :func:`options_for` wrote."""
    return LocalSources(str(tmp_path), str(tmp_path), "Dockerfile")

"""The values a build run is made of: the request, where it runs, its jobs.

A build is: sources resolved once (:class:`BuildRequest`) → a target to run on
(:class:`Target`) → a plan whose builder groups become jobs (:class:`SolveJob`, one solve
per daemon each, with its own session services) run in parallel under one cancellation
scope → post-steps (merge pushed digests into an index, write results).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubectl_build.buildkit.client import BuildKitClient
from kubectl_build.buildkit.session.auth import CredentialStore
from kubectl_build.console import Console
from kubectl_build.context.sources import LocalSources
from kubectl_build.options.build import BuildOptions, OutputSpec

if TYPE_CHECKING:
    from kubectl_build.run.cluster import ClusterTarget


@dataclass(frozen=True)
class BuildRequest:
    """One invocation's build, its inputs resolved."""

    options: BuildOptions
    """The options as the user gave them."""
    local: LocalSources
    """The context and Dockerfile, resolved once."""
    environ: Mapping[str, str]
    """The environment the build was started in (build args, SOURCE_DATE_EPOCH)."""
    console: Console
    """Where results, progress and --debug lines go."""


@dataclass(frozen=True)
class Target:
    """Where a build runs: a standing buildkitd, or a builder in the cluster."""

    name: str
    """The default builder's name (the daemon's address for a standing one)."""
    clients: Sequence[BuildKitClient]
    """The default builder's daemons: one, or one per node to load into."""
    credentials: CredentialStore
    """Registry credentials served through every session."""
    outputs: tuple[OutputSpec, ...]
    """The default builder's outputs (the cluster's load outputs filled in)."""
    cluster: ClusterTarget | None = None
    """The cluster side (builders, nodes, Secrets); None for a standing daemon."""


@dataclass(frozen=True)
class BuildInputs:
    """What every job of a build shares."""

    local: LocalSources
    """The context and Dockerfile."""
    environ: Mapping[str, str]
    """The environment (build args, SOURCE_DATE_EPOCH)."""
    credentials: CredentialStore
    """Registry credentials, served through every job's session."""


@dataclass(frozen=True)
class SolveJob:
    """One builder's share of a build: the daemons it solves on and its solve's options."""

    builder: str
    """The builder's name (for --debug lines)."""
    clients: Sequence[BuildKitClient]
    """One per node to load into, else one."""
    options: BuildOptions
    """The options of its solve (its platforms and outputs)."""
    label: str | None = None
    """Labels its progress lines when several jobs share the display."""
    description: str | None = None
    """Names it in errors when the build has several jobs."""

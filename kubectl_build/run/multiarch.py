"""Builds that span builders: the plan shown first, one solve per builder, one merged index.

``build.run_build`` asks :func:`make_plan` for the per-platform plan (``planner``), runs
one solve per :class:`~kubectl_build.planning.planner.BuilderGroup` (all platforms of one builder in
one solve, builders in parallel through :func:`run_parallel`) and, when several builders
pushed, :func:`merge_and_push` reads back what each pushed by digest, merges it into one
index and puts that under every tag.

Pure: the decisions (:func:`foreign_platforms`, :func:`wants_nodes`, :func:`split_blocker`,
:func:`group_options`, :func:`group_label`, :func:`pushed_digest`, :func:`merged_response`).
I/O: reading the Dockerfile and the builder's workers, the threads, the registry.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Generic, TypeVar

from kubectl_build.buildkit.session.auth import CredentialStore
from kubectl_build.console import Console
from kubectl_build.dockerfile.analysis import Dockerfile, DockerfileError, parse_dockerfile
from kubectl_build.errors import (
    BuildInterruptedError,
    KubectlBuildError,
    RegistryAuthError,
    RegistryError,
)
from kubectl_build.options.build import BuildOptions, OutputSpec
from kubectl_build.planning.planner import (
    MODES,
    BuilderGroup,
    Cluster,
    DefaultBuilder,
    Mode,
    Node,
    Plan,
    PlanError,
    PlanRequest,
    plan_build,
)
from kubectl_build.platforms.matching import BUILDER_OS, PlatformFields, worker_runs
from kubectl_build.platforms.platform import Platform, native_platform
from kubectl_build.run.sources import LocalSources

if TYPE_CHECKING:
    # The registry client (urllib, http.client, ssl: ~17 ms to import) is needed only to
    # merge several builders' pushes, never before Solve.
    from kubectl_build.registry.client import Manifest, RegistryClient

T = TypeVar("T")

CANCEL_GRACE = 15.0
"""Seconds the other builders get to stop their solves once one failed (or on Ctrl-C)."""
_POLL = 0.5
_MODES: Mapping[str, Mode] = {mode: mode for mode in MODES}


# ---------------------------------------------------------------------------- planning (pure)


def foreign_platforms(platforms: Iterable[Platform], builder: DefaultBuilder) -> tuple[Platform, ...]:
    """The Linux platforms the default builder cannot run natively (candidates for other nodes)."""
    return tuple(p for p in platforms
                 if p.os == BUILDER_OS and not worker_runs(builder.platform, builder.reported, p))


def wants_nodes(options: BuildOptions, builder: DefaultBuilder) -> bool:
    """Whether the nodes matter: only a foreign platform in auto or native mode can go to a
    node of its own architecture. Everything else skips the API (the warm path stays warm)."""
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


def pushed_digest(response: Mapping[str, str], what: str) -> str:
    """The digest a builder pushed (its exporter response's ``containerimage.digest``).

    Raises:
        RegistryError: the builder reported none.
    """
    digest = response.get("containerimage.digest", "")
    if not digest.startswith("sha256:"):
        raise RegistryError(f"{what} reported no pushed digest",
                            "check that the builder's image exporter pushed")
    return digest


def merged_response(index: Manifest, names: Sequence[str]) -> dict[str, str]:
    """An exporter response for the merged index, as one multi-platform solve reports it."""
    descriptor = {"mediaType": index.media_type, "digest": index.digest, "size": len(index.body)}
    return {
        "containerimage.digest": index.digest,
        "containerimage.descriptor": base64.b64encode(json.dumps(descriptor).encode()).decode(),
        "image.name": ",".join(names),
    }


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


# ---------------------------------------------------------------------------- reading inputs


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


def default_builder(name: str, node: str, reported: Sequence[PlatformFields]) -> DefaultBuilder:
    """The default builder from what its first worker reports (``ListWorkers``)."""
    return DefaultBuilder.from_workers(name, node, reported, native_platform())


def request_for(options: BuildOptions, local: LocalSources, build_args: Mapping[str, str],
                console: Console) -> PlanRequest | None:
    """The planner's request; None when there is nothing to plan (no ``--platform``) or the
    Dockerfile cannot be read here (remote, unparsable: BuildKit has the last word)."""
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


def make_plan(options: BuildOptions, local: LocalSources, build_args: Mapping[str, str],
              builder: Callable[[], DefaultBuilder],
              nodes: Callable[[], tuple[Sequence[Node], str]], console: Console) -> Plan | None:
    """The plan for a build with ``--platform``; None to build as asked on the default builder.

    Args:
        options: the build's options.
        local: where the Dockerfile is.
        build_args: build args as sent (they can change FROM lines).
        builder: reads the default builder's platforms.
        nodes: lists the nodes and names the default builder's node (called only when a
            foreign platform could go native).
        console: for --debug lines.

    Raises:
        PlanError: a platform cannot be built as asked.
    """
    request = request_for(options, local, build_args, console)
    if request is None:
        return None
    default = builder()
    found: Sequence[Node] = ()
    if wants_nodes(options, default):
        found, node = nodes()
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
                          build_args: Mapping[str, str], builder: Callable[[], DefaultBuilder],
                          remembered: Callable[[], tuple[Sequence[Node], str] | None],
                          nodes: Callable[[], tuple[Sequence[Node], str]],
                          console: Console) -> Plan | None:
    """:func:`make_plan` from nodes a recent build listed, when there are some (no API call),
    listing them afresh whenever that could change the outcome.

    Remembered nodes may be stale. A plan that keeps every platform on the default builder
    stands: a node that joined since costs speed, never correctness. A plan that sends a
    platform to another builder (which may be gone with its node), or a refusal (which a new
    node might lift), is made again from ``nodes()``.

    Args:
        remembered: the remembered nodes and the default builder's node; None when none.
        nodes: lists the nodes (the API).
        Others: as :func:`make_plan`.

    Raises:
        PlanError: a platform cannot be built as asked, by the fresh listing.
    """
    used: list[bool] = []

    def first() -> tuple[Sequence[Node], str]:
        known = remembered()
        if known is None:
            return nodes()
        used.append(True)
        console.trace("nodes as listed recently (no API call)")
        return known

    try:
        plan = make_plan(options, local, build_args, builder, first, console)
    except PlanError:
        if not used:
            raise
        console.trace("the remembered nodes refuse the plan: listing the nodes")
        return make_plan(options, local, build_args, builder, nodes, console)
    if used and plan is not None and not all(group.default for group in plan.groups()):
        console.trace("the remembered nodes send a platform to another builder: listing the nodes")
        return make_plan(options, local, build_args, builder, nodes, console)
    return plan


# ---------------------------------------------------------------------------- planning ahead


GUESSED_PLATFORMS = (Platform("linux", "amd64"), Platform("linux", "arm64"))
"""Where a builder may land when the nodes cannot be listed, besides the client's own
platform and the requested ones: a plan is refused ahead only when none of them could
build it, so an unknown cluster never gets a refusal its real nodes would not give."""


def landing_platforms(nodes: Sequence[Node]) -> tuple[Platform, ...]:
    """The platforms a new default builder may be scheduled on: those of the ready,
    schedulable Linux nodes (its pod selects ``kubernetes.io/os=linux``), the most
    common first; empty when no node is known."""
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


def show_plan(plan: Plan, console: Console, progress: str) -> None:
    """Print the plan lines on stderr, except for machine-read progress (quiet, rawjson)."""
    if progress in ("quiet", "rawjson"):
        for line in plan_lines(plan):
            console.trace(line)
        return
    for line in plan_lines(plan):
        console.info(line)


# ---------------------------------------------------------------------------- running in parallel


class GroupCancelledError(KubectlBuildError):
    """A builder's work stopped because another builder failed (never the reported error)."""


@dataclass(frozen=True)
class Task(Generic[T]):
    """One builder's share of the work."""

    label: str
    """How errors name it: ``builder buildkit-arm64 (linux/arm64)``."""
    run: Callable[[threading.Event], T]
    """Does the work; must return soon after the event is set (raising GroupCancelledError)."""


def run_parallel(tasks: Sequence[Task[T]], *, grace: float = CANCEL_GRACE) -> list[T]:
    """Run the tasks in threads; their results in task order.

    The first failure cancels the others (their event is set) and is raised, its message
    naming the task; Ctrl-C cancels all and raises BuildInterruptedError (exit 130).
    A single task runs on the calling thread.

    Raises:
        KubectlBuildError: the first task failure, or the interruption.
    """
    cancel = threading.Event()
    if len(tasks) == 1:
        return [_labelled(tasks[0], cancel)]
    finished: queue.Queue[tuple[int, T | None, BaseException | None]] = queue.Queue()

    def worker(index: int, task: Task[T]) -> None:
        try:
            finished.put((index, task.run(cancel), None))
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            finished.put((index, None, err))

    results: dict[int, T] = {}
    failure: BaseException | None = None
    started = 0
    try:
        for index, task in enumerate(tasks):
            threading.Thread(target=worker, args=(index, task), name=f"kb-group-{index}",
                             daemon=True).start()
            started += 1
        while len(results) < len(tasks) and failure is None:
            try:
                index, result, error = finished.get(timeout=_POLL)
            except queue.Empty:
                continue
            if error is None:
                results[index] = result  # type: ignore[assignment]
            elif not isinstance(error, GroupCancelledError):
                failure = _named(error, tasks[index].label)
    except KeyboardInterrupt:
        cancel.set()
        _drain(finished, started - len(results), grace)
        raise BuildInterruptedError("build cancelled", "every builder stopped its build") from None
    if failure is not None:
        cancel.set()
        _drain(finished, len(tasks) - len(results) - 1, grace)
        raise failure
    return [results[i] for i in range(len(tasks))]


def _labelled(task: Task[T], cancel: threading.Event) -> T:
    try:
        return task.run(cancel)
    except KubectlBuildError as err:
        raise _named(err, task.label) from None


def _named(error: BaseException, label: str) -> BaseException:
    if isinstance(error, KubectlBuildError) and not isinstance(error, BuildInterruptedError):
        return error.evolve(subject=label)
    return error


def _drain(finished: queue.Queue[tuple[int, T | None, BaseException | None]], pending: int,
           grace: float) -> None:
    """Wait (bounded) for the cancelled tasks, so their solves are stopped in the daemon."""
    deadline = time.monotonic() + grace
    while pending > 0 and time.monotonic() < deadline:
        try:
            finished.get(timeout=_POLL)
            pending -= 1
        except queue.Empty:
            continue


# ---------------------------------------------------------------------------- merging


RegistryConnector = Callable[[str, bool], "RegistryClient"]
"""Makes a client for a registry host; the flag asks for plain HTTP."""

_CERT_DIRS = ("{docker}/certs.d", "~/.docker/certs.d", "/etc/docker/certs.d")


def registry_ca(host: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The CA of a registry as Docker finds it: ``certs.d/<host>/ca.crt`` under the docker
    config directory or /etc/docker; None means the system's trust store (SSL_CERT_FILE)."""
    env = os.environ if environ is None else environ
    docker = env.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    for template in _CERT_DIRS:
        folder = os.path.expanduser(template.format(docker=docker))
        path = os.path.join(folder, host, "ca.crt")
        if os.path.isfile(path):
            return path
    return None


def is_loopback(host: str) -> bool:
    """Whether the registry is on this machine, where Docker allows plain HTTP too."""
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def registry_connector(credentials: CredentialStore) -> RegistryConnector:
    """Clients with the build's registry credentials (the session's store)."""
    from kubectl_build.registry.client import RegistryClient

    def connect(host: str, plain_http: bool) -> RegistryClient:
        return RegistryClient(host, credentials.lookup(host), ca_file=registry_ca(host),
                              plain_http=plain_http)
    return connect


def merge_and_push(digests: Sequence[str], names: Sequence[str],
                   connect: RegistryConnector) -> Manifest:
    """Read back what every builder pushed, merge it, put the index under every tag.

    Args:
        digests: what each builder pushed by digest, in plan order.
        names: the image names (``-t``); every repository gets the index.
        connect: makes registry clients.

    Returns:
        The merged index (the same bytes in every repository).

    Raises:
        RegistryError: a registry cannot be reached or refuses; the merge is impossible.
    """
    from kubectl_build.registry.client import push_index
    from kubectl_build.registry.index import merge_index, push_targets

    index: Manifest | None = None
    for target in push_targets(names):
        client, (manifests, configs) = _fetch(connect, target.host, target.repository, digests)
        merged = merge_index(manifests, configs)
        push_index(client, target.repository, target.tags, merged)
        index = merged
    if index is None:
        raise RegistryError("nothing to push the merged index to", "tag the image with -t")
    return index


def _fetch(connect: RegistryConnector, host: str, repository: str, digests: Sequence[str]
           ) -> tuple[RegistryClient, tuple[tuple[Manifest, ...], dict[str, bytes]]]:
    from kubectl_build.registry.client import fetch_pushed

    client = connect(host, False)
    try:
        return client, fetch_pushed(client, repository, digests)
    except RegistryAuthError:
        raise
    except RegistryError as err:
        if not is_loopback(host):
            raise err.evolve(hint=f"the client pushes the merged index itself, so it must reach "
                             f"{host} (a custom CA goes in $DOCKER_CONFIG/certs.d/{host}/ca.crt)"
                             ) from err
        plain = connect(host, True)  # a local registry often speaks plain HTTP (Docker allows it)
        try:
            return plain, fetch_pushed(plain, repository, digests)
        except RegistryError:
            raise err from None

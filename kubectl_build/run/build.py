"""Run one build: sources → session → solve → progress → results.

This module owns the sequence; the pieces it calls are pure (plan, solve) or own
their I/O (sources, buildkit client, session services, progress displays).
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import grpc

from kubectl_build.buildkit.client import BuildKitClient, TLSConfig, parse_address
from kubectl_build.buildkit.errors import translate_solve
from kubectl_build.buildkit.session.auth import AuthService, CredentialStore
from kubectl_build.buildkit.session.filesend import ExportTarget, FileSendService
from kubectl_build.buildkit.session.filesync import FileSyncService, SyncedDir
from kubectl_build.buildkit.session.secrets import SecretSource, SecretsService
from kubectl_build.buildkit.session.service import SessionService
from kubectl_build.buildkit.session.session import Session
from kubectl_build.buildkit.session.ssh import AgentPool, SSHService
from kubectl_build.buildkit.solve import drops_exporters, solve_request
from kubectl_build.console import Console
from kubectl_build.context.cachedir import cache_dir
from kubectl_build.context.dockerignore import read_ignore_file
from kubectl_build.context.walk import WalkFilter
from kubectl_build.errors import (
    BuilderError,
    BuildFailedError,
    BuildInterruptedError,
    KubectlBuildError,
    OutputError,
    RegistryAuthError,
)
from kubectl_build.options.build import BuildOptions
from kubectl_build.planning.solve import SolvePlan, build_args, plan_solve
from kubectl_build.progress.display import Display, resolve_mode, select_display
from kubectl_build.registry.credentials import docker_config_store
from kubectl_build.run import results, sources

if TYPE_CHECKING:
    # The planner and the merge are imported when a build names platforms: the warm
    # single-platform path stays as light as before.
    from kubectl_build.kube.builder import Builder
    from kubectl_build.kube.config import Kube
    from kubectl_build.planning.planner import BuilderGroup, DefaultBuilder, Node, Plan
    from kubectl_build.run.cluster import ClusterTarget
    from kubectl_build.run.multiarch import Ahead

CONNECT_TIMEOUT = 20.0
EMULATOR_PROBE_WAIT = 25.0
"""Seconds to wait for a builder to report newly installed emulators: BuildKit caches its
emulator probe for 20 s."""
EMULATOR_POLL = 1.0


def _process_age(pid: int | None = None) -> float:
    """Seconds since this process (or ``pid``) started (Linux), else since this module loaded."""
    try:
        with open(f"/proc/{pid or 'self'}/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


# Monotonic time of process start: for --debug timings (and the overhead benchmark).
STARTED = time.monotonic() - _process_age()


def time_from(pid: int) -> None:
    """Count --debug timings from the start of process ``pid`` (the local agent's caller)."""
    global STARTED
    STARTED = time.monotonic() - _process_age(pid)
STATUS_DRAIN_TIMEOUT = 10.0


def shared_key(context_dir: str | None) -> str:
    """Stable per (client machine, context dir): lets the daemon diff a rebuild."""
    if context_dir is None:
        return ""
    machine = _client_id()
    digest = hashlib.sha256(f"{machine}:{context_dir}".encode()).hexdigest()[:32]
    return f"{os.path.basename(context_dir) or 'context'}:{digest}"


def _client_id() -> str:
    path = str(cache_dir() / "client-id")
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        value = uuid.uuid4().hex
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="ascii") as fh:
                fh.write(value)
        except OSError:
            pass
        return value


def _services(options: BuildOptions, local: sources.LocalSources, plan: SolvePlan,
              credentials: CredentialStore,
              stack: ExitStack) -> tuple[list[SessionService], FileSyncService]:
    dirs: dict[str, SyncedDir] = {}
    if local.context_dir is not None:
        dirs["context"] = SyncedDir(local.context_dir, predicted=_predicted_filter(local))
    if local.dockerfile_dir is not None:
        dirs["dockerfile"] = SyncedDir(local.dockerfile_dir)
    filesync = FileSyncService(dirs)
    services: list[SessionService] = [filesync, AuthService(credentials)]
    if plan.file_targets:
        services.append(FileSendService(
            {i: ExportTarget(kind, dest) for i, (kind, dest) in plan.file_targets.items()}))
    if options.secrets:
        services.append(SecretsService(
            {s.id: SecretSource(file=s.src, env=s.env) for s in options.secrets}))
    if options.ssh:
        pool = AgentPool()
        stack.callback(pool.close)
        for spec in options.ssh:
            pool.add(spec.id, spec.paths)
        services.append(SSHService(pool))
    return services, filesync


def _predicted_filter(local: sources.LocalSources) -> WalkFilter | None:
    """The filter the frontend will ask the context with: the .dockerignore patterns
    (a `<Dockerfile>.dockerignore` next to the Dockerfile takes precedence)."""
    candidates = [os.path.join(local.context_dir or "", ".dockerignore")]
    if local.dockerfile_dir:
        candidates.insert(0, os.path.join(local.dockerfile_dir,
                                          local.dockerfile_name + ".dockerignore"))
    for path in candidates:
        try:
            with open(path, "rb") as fh:
                return WalkFilter(exclude_patterns=tuple(read_ignore_file(fh.read())))
        except FileNotFoundError:
            continue
        except (OSError, KubectlBuildError):
            return None
    return WalkFilter()


def connect(options: BuildOptions) -> BuildKitClient:
    """A client for the standing daemon named by --buildkit-host."""
    assert options.buildkit_host
    tls = TLSConfig(options.tls_ca_cert, options.tls_cert, options.tls_key,
                    options.tls_server_name)
    client = BuildKitClient(parse_address(options.buildkit_host, tls), tls)
    client.wait_ready(CONNECT_TIMEOUT)
    return client


def run_build(options: BuildOptions, console: Console) -> int:
    """Run the build the options describe; returns the process exit code."""
    environ = dict(os.environ)
    with ExitStack() as stack:
        local = stack.enter_context(sources.resolve(options.context, options.dockerfile))
        requested = options
        cluster_target = None
        ahead: _PlanAhead | None = None
        if options.buildkit_host:
            clients = [stack.enter_context(connect(options))]
            credentials: CredentialStore = docker_config_store()
        else:
            from kubectl_build.run import cluster

            load = not options.outputs and bool(options.tags)
            ahead = _PlanAhead(options, local, environ, console) if options.platforms else None
            cluster_target = stack.enter_context(cluster.open_target(
                options, console, local.context_dir or options.context, load, ahead))
            options = cluster.with_outputs(options, cluster.load_outputs(
                options, cluster_target.worker, cluster_target.builder))
            clients, credentials = list(cluster_target.clients), cluster_target.credentials
        build_plan = _plan(options, local, environ, clients[0], cluster_target, console,
                           ahead.result if ahead is not None else None)
        groups = build_plan.groups() if build_plan is not None else ()
        if len(groups) > 1 and cluster_target is not None:
            _run_multi(groups, requested, options, local, environ, cluster_target, console, stack)
            return 0
        if groups and not groups[0].default and cluster_target is not None:
            # Every platform goes native on one per-architecture builder: today's path there.
            prepared = _prepare_group(groups[0], requested, local, cluster_target, console,
                                      by_digest=False, stack=stack)
            clients, options = list(prepared.clients), replace(prepared.options,
                                                               iidfile=options.iidfile,
                                                               metadata_file=options.metadata_file)
        elif groups and groups[0].needs_emulator_install:
            _emulation(groups[0], None, clients[0], options, cluster_target, console)
        plan = plan_solve(options, local, environ)
        for client in clients:
            services, filesync = _services(options, local, plan, credentials, stack)
            session = Session(services, shared_key(local.context_dir))
            display = select_display(options.progress, console)
            try:
                response = _solve(client, session, plan, display, console)
            except RegistryAuthError as err:
                raise _explain_auth(err, cluster_target) from err
            console.trace(f"context transfer: {filesync.stats}")
        results.report(response, plan, options, console)
        console.trace(f"reported {time.monotonic() - STARTED:.3f}s after start")
    console.trace(f"cleaned up {time.monotonic() - STARTED:.3f}s after start")
    return 0


def _explain_auth(err: RegistryAuthError, target: ClusterTarget | None) -> RegistryAuthError:
    """The error naming the Secret the refused credentials came from (or why none was used)."""
    if target is not None and (secret := target.secret):
        return err.evolve(detail=f"credentials from secret {secret}",
                          hint=f"check the credentials in secret {secret} for that registry")
    if target is not None:
        problem = target.secret_problem
        return err.evolve(
            detail=(f"no registry secret used: {problem}" if problem else
                    f"no secret {target.builder} in namespace {target.namespace}: pushed anonymously"),
            hint=f"create a docker-registry secret named {target.builder} or pass --registry-secret")
    return err


# ---------------------------------------------------------------------------- planning


class _PlanAhead:
    """Plans a build before the default builder is created (``cluster.open_target`` calls
    it then), from the platform of the nodes it will land on: a refused plan (exit 2)
    leaves no builder, Deployment, ConfigMap or pod behind."""

    def __init__(self, options: BuildOptions, local: sources.LocalSources,
                 environ: Mapping[str, str], console: Console) -> None:
        self._options, self._local, self._environ = options, local, environ
        self._console = console
        self.result: Ahead | None = None
        """The plan made, when the builder was about to be created and the planner ran."""

    def __call__(self, kube: Kube) -> None:
        """Plan with the nodes' platform; raises PlanError when it is refused."""
        from kubectl_build.dockerfile.analysis import DockerfileError
        from kubectl_build.kube.nodes import list_nodes
        from kubectl_build.platforms.platform import native_platform
        from kubectl_build.run import multiarch

        options, console = self._options, self._console
        request = multiarch.request_for(options, self._local, build_args(options, self._environ),
                                        console)
        if request is None:
            return
        try:
            nodes = list_nodes(kube)
        except KubectlBuildError as err:
            console.trace(f"nodes cannot be listed ({err.one_line()}): planning for every "
                          "platform the new builder could run on")
            nodes = ()
        try:
            self.result = multiarch.plan_ahead(request, options.builder, nodes,
                                               multiarch.split_blocker(options), native_platform())
        except DockerfileError as err:
            console.trace(f"planner skipped: {err.one_line()}; every platform on the default builder")
            return
        console.trace(f"planned before creating builder {options.builder}, for "
                      f"{self.result.builder.platform}: {'; '.join(self.result.plan.lines())}")


def _plan(options: BuildOptions, local: sources.LocalSources, environ: Mapping[str, str],
          client: BuildKitClient, target: ClusterTarget | None, console: Console,
          ahead: Ahead | None = None) -> Plan | None:
    """The per-platform plan (printed), or None when no --platform was given.

    Args:
        ahead: the plan made before this invocation created the default builder: its
            nodes are reused, and ``ListWorkers`` is asked only when it could change it.
    """
    if not options.platforms:
        return None  # the builder's own platform: nothing to decide, no call to make
    from kubectl_build.run import multiarch

    name = target.builder if target is not None else (options.buildkit_host or "buildkit")
    node = target.node if target is not None else ""

    def builder() -> DefaultBuilder:
        if ahead is not None and not ahead.needs_workers(node):
            console.trace("the plan made before creating the builder holds: ListWorkers not asked")
            return replace(ahead.builder, node=node)
        workers = target.workers if target is not None and target.workers is not None else None
        if workers is None:
            workers = tuple(client.list_workers())
        reported = workers[0].platforms if workers else ()
        return multiarch.default_builder(name, node, reported)

    def remembered() -> tuple[tuple[Node, ...], str] | None:
        known = target.remembered_nodes() if target is not None and ahead is None else None
        return None if known is None or target is None else (known, target.node)

    def nodes() -> tuple[tuple[Node, ...], str]:
        if target is None or target.kube is None:
            return (), ""
        from kubectl_build.kube.nodes import list_nodes

        found = ahead.nodes if ahead is not None else list_nodes(target.kube.get())
        if not found:
            console.trace("nodes cannot be listed: no native placement on other nodes")
        pod_node = target.pod_node()
        target.remember_nodes(found, pod_node)
        return found, pod_node

    plan = multiarch.make_plan_remembering(options, local, build_args(options, environ), builder,
                                           remembered, nodes, console)
    if plan is not None:
        multiarch.show_plan(plan, console, resolve_mode(options.progress, console))
    return plan


def _emulation(group: BuilderGroup, builder: Builder | None, client: BuildKitClient,
               options: BuildOptions, target: ClusterTarget | None, console: Console) -> None:
    """Install the emulators a group's RUN steps need, then check the builder reports them."""
    missing = ", ".join(str(p) for p in group.emulated)
    if target is None or target.kube is None:
        console.info(f"warning: builder {group.builder} reports no emulator for {missing}; "
                     "RUN steps for it will fail unless binfmt emulation is installed on its host")
        return
    from kubectl_build.kube.builder import find_builder
    from kubectl_build.kube.emulation import ensure_emulators

    kube = target.kube.get()
    found = builder or find_builder(kube, group.builder)
    if found is None:
        raise BuilderError(f"builder {group.builder} disappeared while planning",
                           "run the build again")
    ensure_emulators(kube, found, group.emulated, options.qemu_image, console)
    still = _await_emulators(group, client, console)
    if still:
        raise BuilderError(f"builder {group.builder} still cannot run {', '.join(still)} after "
                           f"installing emulators with {options.qemu_image}",
                           "check that the cluster allows privileged pods, or pass --qemu-image")


def _await_emulators(group: BuilderGroup, client: BuildKitClient, console: Console) -> list[str]:
    """Ask the builder (bounded) until it reports every emulated platform; those it does not."""
    from kubectl_build.platforms.matching import worker_platforms

    installed = time.monotonic()
    while True:
        # BuildKit probes emulators again at most every 20 s (archutil.CacheMaxAge), and
        # the last probe was the planner's ListWorkers, seconds ago: ask until it did.
        workers = client.list_workers()
        reported = worker_platforms(workers[0].platforms if workers else ())
        still = [str(p) for p in group.emulated if p not in reported]
        waited = time.monotonic() - installed
        if not still or waited >= EMULATOR_PROBE_WAIT:
            break
        if waited < EMULATOR_POLL:
            console.info(f"waiting for builder {group.builder} to see the new emulators "
                         "(BuildKit looks again every 20 s)")
        time.sleep(EMULATOR_POLL)
    console.trace(f"builder {group.builder} reports {', '.join(str(p) for p in reported)} "
                  f"{waited:.1f}s after installing emulators")
    return still


# ---------------------------------------------------------------------------- several builders


@dataclass(frozen=True)
class GroupRun:
    """One builder's share of a multi-builder build: its clients and its solve's options."""

    group: BuilderGroup
    clients: Sequence[BuildKitClient]
    """One per node to load into, else one."""
    options: BuildOptions
    """From ``multiarch.group_options``."""


def _prepare_group(group: BuilderGroup, requested: BuildOptions, local: sources.LocalSources,
                   target: ClusterTarget, console: Console, *, by_digest: bool,
                   stack: ExitStack) -> GroupRun:
    """Connect a group's builder (creating a per-architecture one), install its emulators."""
    from kubectl_build.run import cluster, multiarch

    load = not requested.outputs and bool(requested.tags)
    builder: Builder | None = None
    if group.default:
        clients, worker = list(target.clients), target.worker
    else:
        from kubectl_build.kube.builder import ensure_arch_builder

        assert target.kube is not None
        kube = target.kube.get()
        builder = ensure_arch_builder(kube, requested.builder, group.builder, group.node_selector,
                                      console)
        _, clients = cluster.open_pods(kube, builder, requested,
                                       local.context_dir or requested.context, load, stack)
        worker = builder.worker
    if group.needs_emulator_install:
        _emulation(group, builder, clients[0], requested, target, console)
    outputs = cluster.load_outputs(requested, worker, group.builder)
    options = multiarch.group_options(requested, group, by_digest=by_digest, outputs=outputs)
    return GroupRun(group, clients, options)


def _run_multi(groups: Sequence[BuilderGroup], requested: BuildOptions, options: BuildOptions,
               local: sources.LocalSources, environ: Mapping[str, str], target: ClusterTarget,
               console: Console, stack: ExitStack) -> None:
    """Builders in parallel; a pushed build is merged into one index under every tag."""
    from kubectl_build.run import multiarch

    by_digest = multiarch.pushes(requested)
    lock = threading.Lock()

    def prepare(group: BuilderGroup, cancel: threading.Event) -> GroupRun:
        inner = ExitStack()
        with lock:
            stack.push(inner)
        return _prepare_group(group, requested, local, target, console, by_digest=by_digest,
                              stack=inner)

    runs = multiarch.run_parallel([
        multiarch.Task(multiarch.group_description(g), functools.partial(prepare, g))
        for g in groups])
    try:
        responses = run_groups(runs, local, environ, target.credentials, console,
                               options.progress)
        if by_digest:
            names = [n for out in requested.outputs if out.pushes
                     for n in out.attrs.get("name", "").split(",") if n]
            digests = [multiarch.pushed_digest(r, multiarch.group_description(run.group))
                       for r, run in zip(responses, runs, strict=True)]
            index = multiarch.merge_and_push(digests, names,
                                             multiarch.registry_connector(target.credentials))
            console.trace(f"merged {len(digests)} pushes into {index.media_type} {index.digest}")
            results.report(multiarch.merged_response(index, names), SolvePlan(
                plan_solve(options, local, environ).spec, {}, tuple(names)), options, console)
        else:
            results.report_groups([(multiarch.group_label(run.group), response)
                                   for run, response in zip(runs, responses, strict=True)],
                                  options, console)
    except RegistryAuthError as err:
        raise _explain_auth(err, target) from err


def run_groups(runs: Sequence[GroupRun], local: sources.LocalSources,
               environ: Mapping[str, str], credentials: CredentialStore, console: Console,
               progress: str) -> list[Mapping[str, str]]:
    """One solve per builder, in parallel, sharing one progress display (each builder's
    steps labelled); the first failure cancels the others. Returns each run's exporter
    response, in order."""
    from kubectl_build.run import multiarch

    display = select_display(progress, console)
    labels = [multiarch.group_label(run.group) for run in runs] if len(runs) > 1 else [None]
    tasks = [multiarch.Task(multiarch.group_description(run.group), functools.partial(
        _run_group, run, label, local, environ, credentials, display, console))
        for run, label in zip(runs, labels, strict=True)]
    display.start()
    ok = False
    try:
        responses = multiarch.run_parallel(tasks)
        ok = True
        return responses
    finally:
        display.finish(ok)


def _run_group(run: GroupRun, label: str | None, local: sources.LocalSources,
               environ: Mapping[str, str], credentials: CredentialStore, display: Display,
               console: Console, cancel: threading.Event) -> Mapping[str, str]:
    plan = plan_solve(run.options, local, environ)
    response: Mapping[str, str] = {}
    with ExitStack() as stack:
        for client in run.clients:
            services, filesync = _services(run.options, local, plan, credentials, stack)
            session = Session(services, shared_key(local.context_dir))
            response = solve_on(client, session, plan, display, console, prefix=label,
                                cancel=cancel)
            console.trace(f"{label or run.group.builder}: context transfer: {filesync.stats}")
    return response


# ---------------------------------------------------------------------------- one solve


def _solve(client: BuildKitClient, session: Session, plan: SolvePlan, display: Display,
           console: Console) -> Mapping[str, str]:
    display.start()
    ok = False
    try:
        response = solve_on(client, session, plan, display, console)
        ok = True
        return response
    finally:
        display.finish(ok)


def solve_on(client: BuildKitClient, session: Session, plan: SolvePlan, display: Display,
             console: Console, *, prefix: str | None = None,
             cancel: threading.Event | None = None) -> dict[str, str]:
    """Send one solve with its session and follow its status into ``display``.

    Args:
        prefix: labels this solve's steps when several solves share the display.
        cancel: set when another builder failed: the solve is cancelled in the daemon.
    """
    _check_exporters(client, plan)
    ref = uuid.uuid4().hex[:25]
    request = solve_request(plan.spec, ref, session.id)
    try:
        with session.open(client):
            future = client.solve(request)
            console.trace(f"solve sent {time.monotonic() - STARTED:.3f}s after start")
            status = _follow_status(client, ref, display, prefix)
            try:
                response = _wait(future, cancel)
                console.trace(f"solve done {time.monotonic() - STARTED:.3f}s after start")
            finally:
                status.join(STATUS_DRAIN_TIMEOUT)
            console.trace(f"status drained {time.monotonic() - STARTED:.3f}s after start")
            return dict(response.exporter_response)
    except grpc.RpcError as err:
        raise _auth_failure(session) or _failed(err, client, display) from err


def _auth_failure(session: Session) -> KubectlBuildError | None:
    """A credential lookup that failed (e.g. a missing credential helper) is the real
    cause of the failed solve it led to: the daemon only saw a failed Credentials call."""
    return next((service.failure for service in session.services
                 if isinstance(service, AuthService) and service.failure is not None), None)


def _check_exporters(client: BuildKitClient, plan: SolvePlan) -> None:
    """Several outputs need a daemon that reads the exporter list (v0.13+): an older one
    would write the first output only and still report success."""
    if len(plan.spec.exporters) < 2:
        return  # the common case asks the daemon nothing
    version = client.info().buildkit_version.version
    if drops_exporters(plan.spec, version):
        raise OutputError(f"buildkitd {version} writes only one output per build, "
                          f"{len(plan.spec.exporters)} were requested",
                          "build once per --output, or use buildkitd v0.13 or newer")


def _wait(future: grpc.Future[Any], cancel: threading.Event | None = None) -> Any:
    try:
        while True:
            if cancel is not None and cancel.is_set():
                from kubectl_build.run.multiarch import GroupCancelledError

                future.cancel()
                raise GroupCancelledError("cancelled: another builder failed")
            try:
                return future.result(timeout=0.5)
            except grpc.FutureTimeoutError:
                continue
    except KeyboardInterrupt:
        future.cancel()
        raise BuildInterruptedError("build cancelled", "the daemon stopped the build") from None


def _failed(err: grpc.RpcError, client: BuildKitClient, display: Display) -> KubectlBuildError:
    error = translate_solve(err, client.endpoint.address)
    failure = display.model.failure()
    if isinstance(error, BuildFailedError) and failure is not None and failure.exit_code is not None \
            and "exit code" not in error.message:
        return error.evolve(detail=f"exit code {failure.exit_code}")
    return error


def _follow_status(client: BuildKitClient, ref: str, display: Display,
                   prefix: str | None = None) -> threading.Thread:
    lock = threading.Lock()

    def run() -> None:
        try:
            for resp in _retrying_status(client, ref):
                with lock:
                    if prefix is None:
                        display.update(resp)
                    else:
                        display.update(resp, prefix=prefix)
        except grpc.RpcError:
            pass  # the Solve result carries the real error

    thread = threading.Thread(target=run, name="kb-status", daemon=True)
    thread.start()
    return thread


def _retrying_status(client: BuildKitClient, ref: str) -> Iterator[Any]:
    # Status can race Solve registering the job; the daemon waits a few seconds,
    # so one retry after a short pause covers a slow start.
    for attempt in range(2):
        try:
            yield from client.status(ref)
            return
        except grpc.RpcError as err:
            if attempt or "no such job" not in (err.details() or ""):
                raise
            time.sleep(0.5)

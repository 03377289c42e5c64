"""One job's solves: session services, the Solve call, its status stream, its failure.

:func:`run_solves` turns :class:`SolveJob` values into runner jobs sharing one progress
display (each job's steps labelled when there are several); :func:`solve_on` is one solve
on one daemon.
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from kubectl_build._proto.control_pb2 import SolveRequest as ControlSolveRequest
from kubectl_build._proto.control_pb2 import SolveResponse
from kubectl_build.buildkit.client import BuildKitClient, SolveCall
from kubectl_build.buildkit.session.auth import AuthService
from kubectl_build.buildkit.session.content import ContentService
from kubectl_build.buildkit.session.filesend import ExportTarget, FileSendService
from kubectl_build.buildkit.session.filesync import FileSyncService, SyncedDir
from kubectl_build.buildkit.session.secrets import SecretSource, SecretsService
from kubectl_build.buildkit.session.service import SessionService
from kubectl_build.buildkit.session.session import Session
from kubectl_build.buildkit.session.ssh import AgentPool, SSHService
from kubectl_build.buildkit.solve import FRONTEND, drops_exporters, solve_request
from kubectl_build.console import Console
from kubectl_build.context.cachedir import cache_dir
from kubectl_build.context.dockerignore import read_ignore_file
from kubectl_build.context.sources import LocalSources
from kubectl_build.context.walk import WalkFilter
from kubectl_build.errors import (
    BuildFailedError,
    BuildInterruptedError,
    KubectlBuildError,
    OutputError,
)
from kubectl_build.ocilayout.store import LayoutStore
from kubectl_build.options.build import BuildOptions
from kubectl_build.options.call import CallFunc
from kubectl_build.planning.solve import PreparedSolve, prepare_solve, shared_key
from kubectl_build.progress.display import Display, select_display
from kubectl_build.run.jobs import Job, JobCancelledError, run_jobs
from kubectl_build.run.layouts import (
    prepare_dirs,
    record_results,
    resolve_cache_imports,
    resolve_named_contexts,
)
from kubectl_build.run.model import BuildInputs, SolveJob

_T = TypeVar("_T")
STATUS_DRAIN_TIMEOUT = 10.0
NEVER_STARTED_WAIT = 0.5
"""Seconds to wait for the progress of a build that sent none yet."""


def session_key(context_dir: str | None) -> str:
    """The session's shared key: the context dir's, on this client machine."""
    return "" if context_dir is None else shared_key(context_dir, _client_id())


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


def session_services(options: BuildOptions, inputs: BuildInputs, prepared: PreparedSolve,
                     stack: ExitStack) -> tuple[list[SessionService], FileSyncService]:
    """The session services one solve needs (agents it starts close with ``stack``)."""
    local = inputs.local
    dirs: dict[str, SyncedDir] = {}
    if local.context_dir is not None:
        dirs["context"] = SyncedDir(local.context_dir, predicted=predicted_filter(local))
    if local.dockerfile_dir is not None:
        dirs["dockerfile"] = SyncedDir(local.dockerfile_dir)
    for name, path in prepared.named_dirs.items():
        dirs[name] = SyncedDir(path)
    filesync = FileSyncService(dirs)
    services: list[SessionService] = [filesync, AuthService(inputs.credentials)]
    if prepared.file_targets:
        services.append(FileSendService(
            {i: ExportTarget(kind, dest) for i, (kind, dest) in prepared.file_targets.items()}))
    if prepared.layouts:
        services.append(ContentService({use.store_id: LayoutStore(Path(use.root))
                                        for use in prepared.layouts}))
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


def predicted_filter(local: LocalSources) -> WalkFilter | None:
    """The filter the frontend will ask the context with: the .dockerignore patterns.

    A `<Dockerfile>.dockerignore` next to the Dockerfile takes precedence.
    """
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


def run_solves(jobs: Sequence[SolveJob], inputs: BuildInputs, console: Console,
               progress: str) -> list[dict[str, str]]:
    """Every job's solves under one cancellation scope and one progress display.

    Returns:
        Each job's exporter response (of its last solve), in job order.
    """
    display = select_display(progress, console)
    display.start()
    ok = False
    try:
        responses = run_jobs([Job(job.description, functools.partial(
            _run_job, job, inputs, display, console)) for job in jobs])
        ok = True
        return responses
    finally:
        display.finish(ok)


def _run_job(job: SolveJob, inputs: BuildInputs, display: Display, console: Console,
             cancel: threading.Event) -> dict[str, str]:
    options = resolve_named_contexts(resolve_cache_imports(job.options, console))
    prepared = prepare_solve(options, inputs.local, inputs.environ, _client_id())
    prepare_dirs(prepared)
    response: dict[str, str] = {}
    with ExitStack() as stack:
        for client in job.clients:
            services, filesync = session_services(options, inputs, prepared, stack)
            session = Session(services, session_key(inputs.local.context_dir))
            watch = SolveWatch(display, console, job.label)
            response = solve_on(client, session, prepared, watch, cancel=cancel) \
                if options.call is None else call_on(client, session, prepared, watch, options.call)
            record_results(prepared, response)
            console.trace(f"{job.label or job.builder}: context transfer: {filesync.stats}")
    return response


@dataclass(frozen=True)
class SolveWatch:
    """Where a solve's progress goes."""

    display: Display
    """The display, shared by every solve of the build."""
    console: Console
    """For --debug timings."""
    prefix: str | None = None
    """Labels this solve's steps when several solves share the display."""


def solve_on(client: BuildKitClient, session: Session, prepared: PreparedSolve, watch: SolveWatch,
             *, cancel: threading.Event | None = None) -> dict[str, str]:
    """Send one solve with its session and follow its status into the watch's display.

    Args:
        client: the daemon.
        session: the session services it may call back.
        prepared: what to solve.
        watch: where progress goes.
        cancel: set when another job failed: the solve is cancelled in the daemon.
    """
    _check_exporters(client, prepared)
    request = solve_request(prepared.spec, uuid.uuid4().hex[:25], session.id)
    response = _watched_solve(client, session, request, watch, lambda call: _wait(call, cancel))
    return dict(response.exporter_response)


def call_on(client: BuildKitClient, session: Session, prepared: PreparedSolve, watch: SolveWatch,
            call: CallFunc) -> dict[str, str]:
    """Ask the frontend ``call`` instead of building: its answer, as result metadata.

    A Solve without frontend holds the build (and its session) open while we, as the
    build's frontend, send the Dockerfile frontend the subrequest through the gateway.
    """
    request = solve_request(replace(prepared.spec, exporters=(), cache_exports=()),
                            uuid.uuid4().hex[:25], session.id)
    request.frontend = ""
    request.internal = True  # a question, not a build: kept out of the build history, as buildx does
    attrs = {**prepared.spec.frontend_attrs, "requestid": call.request_id,
             "frontend.caps": "moby.buildkit.frontend.subrequests+forward"}

    def ask(solve: SolveCall) -> dict[str, bytes]:
        answer = client.frontend_call(request.ref, FRONTEND, attrs)
        _wait(solve)
        return answer

    answer = _watched_solve(client, session, request, watch, ask)
    return {key: value.decode("utf-8", "replace") for key, value in answer.items()}


def _watched_solve(client: BuildKitClient, session: Session, request: ControlSolveRequest,
                   watch: SolveWatch, finish: Callable[[SolveCall], _T]) -> _T:
    """Send ``request`` with its session open and its progress followed.

    ``finish`` waits for the outcome. A failure is reported by its real cause (a failed
    credential lookup, the failing step's exit code).
    """
    with session.open(client):
        call = client.start_solve(request)
        watch.console.trace_time("solve sent")
        status = _follow_status(client, request.ref, watch.display, watch.prefix)
        done = False
        try:
            outcome = finish(call)
            done = True
            watch.console.trace_time("solve done")
        except (JobCancelledError, BuildInterruptedError):
            raise
        except KubectlBuildError as err:
            better = _auth_failure(session) or _failed(err, watch.display)
            if better is err:
                raise
            raise better from err
        finally:
            status.drain(failed=not done)
        watch.console.trace_time("status drained")
        return outcome


def _auth_failure(session: Session) -> KubectlBuildError | None:
    """The failed credential lookup behind a failed solve, if there was one.

    A lookup that failed (e.g. a missing credential helper) is the real cause of the
    failed solve it led to: the daemon only saw a failed Credentials call.
    """
    return next((service.failure for service in session.services
                 if isinstance(service, AuthService) and service.failure is not None), None)


def _check_exporters(client: BuildKitClient, prepared: PreparedSolve) -> None:
    """Refuse several outputs on a daemon older than v0.13.

    An older one does not read the exporter list: it would write the first output only
    and still report success.
    """
    if len(prepared.spec.exporters) < 2:
        return  # the common case asks the daemon nothing
    version = client.info().buildkit_version.version
    if drops_exporters(prepared.spec, version):
        raise OutputError(f"buildkitd {version} writes only one output per build, "
                          f"{len(prepared.spec.exporters)} were requested",
                          "build once per --output, or use buildkitd v0.13 or newer")


def _wait(call: SolveCall, cancel: threading.Event | None = None) -> SolveResponse:
    try:
        while True:
            if cancel is not None and cancel.is_set():
                call.cancel()
                raise JobCancelledError("cancelled: another builder failed")
            response = call.result(timeout=0.5)
            if response is not None:
                return response
    except KeyboardInterrupt:
        call.cancel()
        raise BuildInterruptedError("build cancelled", "the daemon stopped the build") from None


def _failed(error: KubectlBuildError, display: Display) -> KubectlBuildError:
    """The solve's failure, with the step's exit code when only the progress knew it."""
    failure = display.model.failure()
    if isinstance(error, BuildFailedError) and failure is not None and failure.exit_code is not None \
            and "exit code" not in error.message:
        return error.evolve(detail=f"exit code {failure.exit_code}")
    return error


class _StatusFollower(threading.Thread):
    """The solve's progress into the display, on its own thread."""

    def __init__(self, client: BuildKitClient, ref: str, display: Display, prefix: str | None) -> None:
        super().__init__(name="kb-status", daemon=True)
        self.client, self.ref, self.display, self.prefix = client, ref, display, prefix
        self.seen = threading.Event()

    def run(self) -> None:
        try:
            for resp in self.client.follow_status(self.ref):
                self.seen.set()
                if self.prefix is None:
                    self.display.update(resp)
                else:
                    self.display.update(resp, prefix=self.prefix)
        except KubectlBuildError:
            pass  # the Solve result carries the real error

    def drain(self, *, failed: bool) -> None:
        """Wait for the last of the progress.

        Not long for a failed build that sent none: the daemon refused the solve, and its
        status would only end with the daemon's own wait for a build that never starts.
        """
        started = self.seen.is_set() or not failed
        self.join(STATUS_DRAIN_TIMEOUT if started else NEVER_STARTED_WAIT)


def _follow_status(client: BuildKitClient, ref: str, display: Display,
                   prefix: str | None = None) -> _StatusFollower:
    follower = _StatusFollower(client, ref, display, prefix)
    follower.start()
    return follower

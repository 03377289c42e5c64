"""Run one build: sources → session → solve → progress → results.

This module owns the sequence; the pieces it calls are pure (plan, solve) or own
their I/O (sources, buildkit client, session services, progress displays).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import Any

import grpc

from kubectl_build import results, sources
from kubectl_build.buildkit.client import BuildKitClient, TLSConfig, parse_address
from kubectl_build.buildkit.errors import translate_solve
from kubectl_build.buildkit.session.auth import AuthService, CredentialStore
from kubectl_build.buildkit.session.filesend import ExportTarget, FileSendService
from kubectl_build.buildkit.session.filesync import FileSyncService, SyncedDir
from kubectl_build.buildkit.session.secrets import SecretSource, SecretsService
from kubectl_build.buildkit.session.service import SessionService
from kubectl_build.buildkit.session.session import Session
from kubectl_build.buildkit.session.ssh import AgentPool, SSHService
from kubectl_build.buildkit.solve import solve_request
from kubectl_build.cachedir import cache_dir
from kubectl_build.console import Console
from kubectl_build.context.dockerignore import read_ignore_file
from kubectl_build.context.walk import WalkFilter
from kubectl_build.credentials import docker_config_store
from kubectl_build.errors import (
    BuildFailedError,
    BuildInterruptedError,
    KubectlBuildError,
    RegistryAuthError,
)
from kubectl_build.options import BuildOptions
from kubectl_build.plan import SolvePlan, plan_solve
from kubectl_build.progress.display import Display, select_display

CONNECT_TIMEOUT = 20.0


def _process_age() -> float:
    """Seconds since this process started (Linux), else since this module loaded."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


# Monotonic time of process start: for --debug timings (and the overhead benchmark).
STARTED = time.monotonic() - _process_age()
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
        cluster_target = None
        if options.buildkit_host:
            clients = [stack.enter_context(connect(options))]
            credentials = docker_config_store()
        else:
            from kubectl_build import cluster

            load = not options.outputs and bool(options.tags)
            cluster_target = stack.enter_context(cluster.open_target(
                options, console, local.context_dir or options.context, load))
            options = cluster.with_outputs(options, cluster.load_outputs(
                options, cluster_target.worker, cluster_target.builder))
            clients, credentials = list(cluster_target.clients), cluster_target.credentials
        plan = plan_solve(options, local, environ)
        for client in clients:
            services, filesync = _services(options, local, plan, credentials, stack)
            session = Session(services, shared_key(local.context_dir))
            display = select_display(options.progress, console)
            try:
                auth = next(s for s in services if isinstance(s, AuthService))
                response = _solve_with_auth(client, session, plan, display, console, auth)
            except RegistryAuthError as err:
                if cluster_target is not None and (secret := cluster_target.secret):
                    err.message += f" (credentials from secret {secret})"
                    err.hint = f"check the credentials in secret {secret} for that registry"
                elif cluster_target is not None:
                    problem = cluster_target.secret_problem
                    err.message += (f" (no registry secret used: {problem})" if problem else
                                    f" (no secret {cluster_target.builder} in namespace "
                                    f"{cluster_target.namespace}: pushed anonymously)")
                    err.hint = (f"create a docker-registry secret named {cluster_target.builder}"
                                " or pass --registry-secret")
                raise
            console.trace(f"context transfer: {filesync.stats}")
        results.report(response, plan, options, console)
    return 0


def _solve_with_auth(client: BuildKitClient, session: Session, plan: SolvePlan,
                     display: Display, console: Console, auth: AuthService) -> Mapping[str, str]:
    """A credential lookup that failed (e.g. a missing credential helper) is the real
    cause of the failed solve it led to: report it instead of the daemon's wrapping."""
    try:
        return _solve(client, session, plan, display, console)
    except KubectlBuildError as err:
        if auth.failure is None:
            raise
        raise auth.failure from err


def _solve(client: BuildKitClient, session: Session, plan: SolvePlan, display: Display,
           console: Console) -> Mapping[str, str]:
    ref = uuid.uuid4().hex[:25]
    request = solve_request(plan.spec, ref, session.id)
    display.start()
    ok = False
    try:
        with session.open(client):
            future = client.solve(request)
            console.trace(f"solve sent {time.monotonic() - STARTED:.3f}s after start")
            status = _follow_status(client, ref, display)
            try:
                response = _wait(future)
                console.trace(f"solve done {time.monotonic() - STARTED:.3f}s after start")
            finally:
                status.join(STATUS_DRAIN_TIMEOUT)
            ok = True
            console.trace(f"status drained {time.monotonic() - STARTED:.3f}s after start")
            return dict(response.exporter_response)
    except grpc.RpcError as err:
        raise _failed(err, client, display) from err
    finally:
        display.finish(ok)


def _wait(future: grpc.Future[Any]) -> Any:
    try:
        while True:
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
    if isinstance(error, BuildFailedError) and failure is not None:
        code = getattr(failure, "exit_code", None)
        if code is not None and "exit code" not in error.message:
            error.message += f" (exit code {code})"
    return error


def _follow_status(client: BuildKitClient, ref: str, display: Display) -> threading.Thread:
    lock = threading.Lock()

    def run() -> None:
        try:
            for resp in _retrying_status(client, ref):
                with lock:
                    display.update(resp)
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

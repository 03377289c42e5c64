"""Run one build: sources → target → plan → jobs → post-steps.

Every build shape goes this one way: a build without ``--platform`` is one job on the
default builder; a multi-platform build is one job per builder group of the plan (all
platforms of a builder in one solve); the jobs run under one cancellation scope
(:mod:`kubectl_build.run.jobs`), and the post-step merges pushed digests into one index
or writes the single result.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import TYPE_CHECKING

from kubectl_build.buildkit.client import BuildKitClient, TLSConfig, parse_address
from kubectl_build.console import Console
from kubectl_build.context import sources
from kubectl_build.errors import RegistryAuthError
from kubectl_build.kube.pod_exec import WarmPath
from kubectl_build.options.annotations import for_index
from kubectl_build.options.build import BuildOptions
from kubectl_build.planning.groups import BuilderGroup, group_description, group_label, group_options, pushes
from kubectl_build.planning.solve import PreparedSolve, prepare_solve
from kubectl_build.registry.credentials import docker_config_store
from kubectl_build.run import results
from kubectl_build.run.call import render_call
from kubectl_build.run.emulation import ensure_group_emulators
from kubectl_build.run.jobs import Job, run_jobs
from kubectl_build.run.model import BuildInputs, BuildRequest, SolveJob, Target
from kubectl_build.run.solve import run_solves

if TYPE_CHECKING:
    # The planning step (Dockerfile analysis, the planner) is imported only by builds that
    # name platforms: the warm single-platform path stays as light as it was.
    from kubectl_build.planning.planner import Plan
    from kubectl_build.run.cluster import ClusterTarget
    from kubectl_build.run.planning import PlanAhead

CONNECT_TIMEOUT = 20.0


def connect(options: BuildOptions) -> BuildKitClient:
    """A client for the standing daemon named by --buildkit-host."""
    assert options.buildkit_host
    tls = TLSConfig(options.tls_ca_cert, options.tls_cert, options.tls_key,
                    options.tls_server_name)
    client = BuildKitClient(parse_address(options.buildkit_host, tls), tls)
    # One call rather than wait_ready: that one's connectivity watch makes closing the
    # channel wait up to 0.2 s more, and a call fails at once where the OS refuses.
    try:
        client.info(timeout=CONNECT_TIMEOUT)
    except BaseException:
        client.close()
        raise
    return client


def run_build(options: BuildOptions, console: Console, warm: WarmPath | None = None) -> int:
    """Run the build the options describe; returns the process exit code.

    Args:
        options: the build.
        console: where its output goes.
        warm: the invocation's warm path (execs and the Secret read started early, the
            local agent's spare exec); None when nothing was started early.
    """
    with ExitStack() as stack:
        local = stack.enter_context(sources.resolve(options.context, options.dockerfile))
        request = BuildRequest(options, local, dict(os.environ), console)
        ahead = _plan_ahead(request)
        target = _open_target(request, ahead, warm, stack)
        try:
            code = _run(request, target, ahead, stack)
        except RegistryAuthError as err:
            if target.cluster is None:
                raise
            raise _explain_auth(err, target.cluster) from err
        console.trace_time("reported")
    console.trace_time("cleaned up")
    return code


def _plan_ahead(request: BuildRequest) -> PlanAhead | None:
    """The planner the cluster target calls before it creates the default builder."""
    if not request.options.platforms or request.options.buildkit_host:
        return None
    from kubectl_build.run.planning import PlanAhead

    return PlanAhead(request)


def _plan(request: BuildRequest, target: Target, ahead: PlanAhead | None) -> Plan | None:
    """The per-platform plan (printed); None when the build names no platform."""
    if not request.options.platforms:
        return None
    from kubectl_build.run.planning import plan_for

    return plan_for(request, target, ahead.result if ahead is not None else None)


def _open_target(request: BuildRequest, ahead: PlanAhead | None, warm: WarmPath | None,
                 stack: ExitStack) -> Target:
    """Connect the default builder (creating it in the cluster on first use)."""
    options = request.options
    if options.buildkit_host:
        return Target(options.buildkit_host, [stack.enter_context(connect(options))],
                      docker_config_store(), options.outputs)
    from kubectl_build.run import cluster

    load = not options.outputs and bool(options.tags)
    opening = cluster.Opening(options, request.console, request.local.context_dir or options.context,
                              load, warm)
    found = stack.enter_context(cluster.open_target(opening, ahead))
    return Target(found.builder, list(found.clients), found.credentials,
                  cluster.load_outputs(options, found.worker, found.builder), found)


def _run(request: BuildRequest, target: Target, ahead: PlanAhead | None, stack: ExitStack) -> int:
    """Plan, prepare and run the jobs, then the post-steps; the exit code."""
    plan = _plan(request, target, ahead)
    groups = plan.groups() if plan is not None else (_whole_build(request.options, target),)
    by_digest = len(groups) > 1 and pushes(request.options)
    jobs = _prepare_jobs(groups, request, target, by_digest, stack)
    inputs = BuildInputs(request.local, request.environ, target.credentials)
    responses = run_solves(jobs, inputs, request.console, request.options.progress)
    if request.options.call is not None:
        shown = os.path.normpath(request.options.dockerfile or "Dockerfile")
        answer = render_call(request.options.call, responses[0], shown)
        request.console.result(answer.text.removesuffix("\n"))  # result() ends the line
        return answer.code
    if by_digest:
        _merge(responses, jobs, request, target)
    elif len(jobs) > 1:
        results.report_groups([(job.label or job.builder, response)
                               for job, response in zip(jobs, responses, strict=True)],
                              request.options, request.console)
    else:
        prepared = prepare_solve(jobs[0].options, request.local, request.environ)
        results.report(responses[0], prepared, request.options, request.console)
    return 0


def _whole_build(options: BuildOptions, target: Target) -> BuilderGroup:
    """The one group of a build that names no platform: the default builder's own."""
    return BuilderGroup(target.name, True, options.platforms, (), {}, (), False)


def _prepare_jobs(groups: Sequence[BuilderGroup], request: BuildRequest, target: Target,
                  by_digest: bool, stack: ExitStack) -> list[SolveJob]:
    """One job per builder group, prepared in parallel (builders created, pods dialled)."""
    several = len(groups) > 1
    lock = threading.Lock()

    def prepare(group: BuilderGroup, _cancel: threading.Event) -> SolveJob:
        inner = ExitStack()  # ExitStack is not thread-safe: one per job, pushed under a lock
        with lock:
            stack.push(inner)
        job = _prepare(group, request, target, by_digest, inner)
        if not several:
            return job
        return replace(job, label=group_label(group), description=group_description(group))

    return run_jobs([Job(group_description(g) if several else None, functools.partial(prepare, g))
                     for g in groups])


def _prepare(group: BuilderGroup, request: BuildRequest, target: Target, by_digest: bool,
             stack: ExitStack) -> SolveJob:
    """Connect a group's builder (creating a per-architecture one), install its emulators."""
    options, cluster = request.options, target.cluster
    clients, outputs, builder = list(target.clients), target.outputs, None
    if not group.default:
        from kubectl_build.kube.builder import ensure_arch_builder
        from kubectl_build.run.cluster import Opening, load_outputs, open_pods

        assert cluster is not None and cluster.kube is not None
        kube = cluster.kube.get()
        builder = ensure_arch_builder(kube, options.builder, group.builder, group.node_selector,
                                      request.console)
        load = not options.outputs and bool(options.tags)
        opening = Opening(options, request.console, request.local.context_dir or options.context,
                          load)
        _, clients = open_pods(kube, builder, opening, stack)
        outputs = load_outputs(options, builder.worker, group.builder)
    if group.needs_emulator_install:
        ensure_group_emulators(group, builder, clients[0], options.qemu_image, cluster,
                               request.console)
    return SolveJob(group.builder, clients,
                    group_options(options, group, by_digest=by_digest, outputs=outputs))


def _merge(responses: Sequence[dict[str, str]], jobs: Sequence[SolveJob], request: BuildRequest,
           target: Target) -> None:
    """Several builders pushed by digest: merge their images into one index under every tag."""
    from kubectl_build.registry import merge

    options = request.options
    names = [n for out in options.outputs if out.pushes
             for n in out.attrs.get("name", "").split(",") if n]
    digests = [merge.pushed_digest(response, job.description or job.builder)
               for response, job in zip(responses, jobs, strict=True)]
    index = merge.merge_and_push(digests, names, merge.registry_connector(target.credentials),
                                 for_index(options.annotations))
    request.console.trace(f"merged {len(digests)} pushes into {index.media_type} {index.digest}")
    spec = prepare_solve(options, request.local, request.environ).spec
    results.report(merge.merged_response(index, names), PreparedSolve(spec, {}, tuple(names)),
                   options, request.console)


def _explain_auth(err: RegistryAuthError, cluster: ClusterTarget) -> RegistryAuthError:
    """The error naming the Secret the refused credentials came from (or why none was used)."""
    if secret := cluster.secret:
        return err.evolve(detail=f"credentials from secret {secret}",
                          hint=f"check the credentials in secret {secret} for that registry")
    problem = cluster.secret_problem
    return err.evolve(
        detail=(f"no registry secret used: {problem}" if problem else
                f"no secret {cluster.builder} in namespace {cluster.namespace}: pushed anonymously"),
        hint=f"create a docker-registry secret named {cluster.builder} or pass --registry-secret")

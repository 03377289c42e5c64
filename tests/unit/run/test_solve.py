"""Several jobs under one cancellation scope (run_solves) against fake daemons: the first
failure cancels the others in their daemons, Ctrl-C cancels all, progress is labelled."""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubectl_build.buildkit.client import BuildKitClient, parse_address
from kubectl_build.buildkit.session.auth import CredentialStore
from kubectl_build.context.sources import LocalSources
from kubectl_build.errors import BuildFailedError, BuildInterruptedError
from kubectl_build.options.build import BuildFlags, build_options
from kubectl_build.run.model import BuildInputs, SolveJob
from kubectl_build.run.solve import run_solves
from tests.fakes.buildkitd import WAIT, FakeBuildkitd, answer, fail, step
from tests.unit.run.conftest import Captured


@pytest.fixture
def clients() -> Iterator[Callable[[FakeBuildkitd], BuildKitClient]]:
    with ExitStack() as stack:
        yield lambda daemon: stack.enter_context(BuildKitClient(parse_address(daemon.address)))


def _job(name: str, platform: str, client: BuildKitClient, context: Path) -> SolveJob:
    options = build_options(BuildFlags(context=str(context), platform=(platform,)), {})
    return SolveJob(name, [client], options, label=f"{name} {platform}",
                    description=f"builder {name} ({platform})")


def _inputs(context: Path) -> BuildInputs:
    return BuildInputs(LocalSources(str(context), str(context), "Dockerfile"), {}, CredentialStore())


def test_every_job_solves_on_its_own_daemon_and_its_progress_is_labelled(
        daemons: Callable[[], FakeBuildkitd], clients: Callable[[FakeBuildkitd], BuildKitClient],
        context_dir: Path, captured: Captured) -> None:
    first, second = daemons(), daemons()
    first.solver = answer({"containerimage.digest": "sha256:" + "1" * 64})
    second.solver = answer({"containerimage.digest": "sha256:" + "2" * 64})
    first.updates = second.updates = [step("[1/1] COPY hello /hello")]
    jobs = [_job("a", "linux/amd64", clients(first), context_dir),
            _job("b", "linux/arm64", clients(second), context_dir)]

    responses = run_solves(jobs, _inputs(context_dir), captured.console, "plain")

    assert [r["containerimage.digest"][-1] for r in responses] == ["1", "2"]  # in job order
    assert [s.request.frontend_attrs["platform"] for s in first.solves + second.solves] == [
        "linux/amd64", "linux/arm64"]
    progress = captured.stderr.getvalue()
    assert "[a linux/amd64 1/1] COPY hello /hello" in progress
    assert "[b linux/arm64 1/1] COPY hello /hello" in progress


def test_the_first_failure_cancels_the_other_jobs_in_their_daemons(
        daemons: Callable[[], FakeBuildkitd], clients: Callable[[FakeBuildkitd], BuildKitClient],
        context_dir: Path, captured: Captured) -> None:
    failing, waiting = daemons(), daemons()
    waiting.block_until_cancelled()
    failed = fail(grpc.StatusCode.UNKNOWN, 'process "/bin/sh -c exit 7" did not complete '
                  "successfully: exit code: 7")

    def fails_once_the_other_runs(request: Any, context: grpc.ServicerContext) -> Any:
        assert waiting.solve_started.wait(WAIT)  # the other solve is in its daemon first
        return failed(request, context)

    failing.solver = fails_once_the_other_runs
    jobs = [_job("a", "linux/amd64", clients(waiting), context_dir),
            _job("b", "linux/arm64", clients(failing), context_dir)]

    with pytest.raises(BuildFailedError) as info:
        run_solves(jobs, _inputs(context_dir), captured.console, "plain")

    assert info.value.one_line().startswith("builder b (linux/arm64): build failed: process")
    assert waiting.solves[0].cancelled.wait(WAIT), "the other job's solve was not cancelled"


def test_ctrl_c_cancels_the_solve_in_the_daemon_and_is_an_interruption(
        daemons: Callable[[], FakeBuildkitd], clients: Callable[[FakeBuildkitd], BuildKitClient],
        context_dir: Path, captured: Captured) -> None:
    daemon = daemons()
    daemon.block_until_cancelled()
    def interrupt() -> None:
        if daemon.solve_started.wait(WAIT):
            _thread.interrupt_main()  # Ctrl-C, as the terminal delivers it to the main thread

    threading.Thread(target=interrupt, daemon=True).start()

    with pytest.raises(BuildInterruptedError) as info:
        run_solves([_job("a", "linux/amd64", clients(daemon), context_dir)], _inputs(context_dir),
                   captured.console, "plain")

    assert info.value.exit_code == 130
    assert daemon.solves[0].cancelled.wait(WAIT), "the daemon never saw the cancellation"


def test_one_job_loading_into_several_nodes_solves_on_each(
        daemons: Callable[[], FakeBuildkitd], clients: Callable[[FakeBuildkitd], BuildKitClient],
        context_dir: Path, captured: Captured) -> None:
    node_a, node_b = daemons(), daemons()
    options = build_options(BuildFlags(context=str(context_dir), tag=("app:dev",)), {})
    job = SolveJob("buildkit", [clients(node_a), clients(node_b)], options)

    run_solves([job], _inputs(context_dir), captured.console, "quiet")

    assert len(node_a.solves) == len(node_b.solves) == 1
    assert node_a.solves[0].request.session != node_b.solves[0].request.session  # a session each

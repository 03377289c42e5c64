"""The whole build sequence (run_build) against a fake daemon: one job, its session, its
result, its failures. The real daemon's side is the end-to-end suite's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from kubectl_build.errors import BuildFailedError, ExitCode, OutputError, RegistryAuthError
from kubectl_build.options.build import BuildFlags, BuildOptions, build_options
from kubectl_build.run.build import run_build
from tests.fakes.buildkitd import FakeBuildkitd, answer, fail, step
from tests.unit.run.conftest import Captured

DIGEST = "sha256:" + "ab" * 32
CONFIG = "sha256:" + "cd" * 32


def _options(context: Path, daemon: FakeBuildkitd, **flags: object) -> BuildOptions:
    return build_options(BuildFlags(context=str(context), buildkit_host=daemon.address,
                                    progress="plain", **flags), {})  # type: ignore[arg-type]


def test_a_build_is_one_solve_with_its_session_and_its_result(
        daemons: Callable[[], FakeBuildkitd], context_dir: Path, captured: Captured,
        tmp_path: Path) -> None:
    daemon = daemons()
    daemon.solver = answer({"containerimage.digest": DIGEST, "containerimage.config.digest": CONFIG})
    daemon.updates = [step("[1/1] COPY hello /hello")]
    meta, iid = tmp_path / "meta.json", tmp_path / "iid"
    options = _options(context_dir, daemon, tag=("reg.example.com/app:1",), push=True,
                       metadata_file=str(meta), iidfile=str(iid))

    assert run_build(options, captured.console) == 0

    assert len(daemon.solves) == 1
    request = daemon.solves[0].request
    assert request.frontend == "dockerfile.v0"
    assert [(e.type, e.attrs["name"], e.attrs["push"]) for e in request.exporters] == [
        ("image", "reg.example.com/app:1", "true")]
    session, = daemon.sessions
    assert session.headers["x-docker-expose-session-uuid"] == [request.session]
    assert "/moby.filesync.v1.FileSync/DiffCopy" in session.methods()
    assert "/moby.filesync.v1.Auth/Credentials" in session.methods()
    assert session.ended.is_set()  # the session closed with the build
    assert captured.stdout.getvalue() == f"{DIGEST}\n"
    assert f"image reg.example.com/app:1@{DIGEST}" in captured.stderr.getvalue()
    assert "COPY hello /hello" in captured.stderr.getvalue()  # progress reached the display
    assert iid.read_text() == CONFIG
    assert json.loads(meta.read_text())["containerimage.digest"] == DIGEST


def test_a_failed_step_is_the_builds_own_error(daemons: Callable[[], FakeBuildkitd],
                                              context_dir: Path, captured: Captured) -> None:
    daemon = daemons()
    daemon.solver = fail(grpc.StatusCode.UNKNOWN, 'process "/bin/sh -c false" did not complete '
                         "successfully: exit code: 3")
    with pytest.raises(BuildFailedError) as info:
        run_build(_options(context_dir, daemon), captured.console)
    assert info.value.exit_code == ExitCode.BUILD_FAILED
    assert info.value.step_exit_code == 3
    assert info.value.subject is None  # one job speaks for the whole build
    assert info.value.one_line().startswith('build failed: process "/bin/sh -c false"')


def test_a_refused_push_names_the_registry(daemons: Callable[[], FakeBuildkitd],
                                          context_dir: Path, captured: Captured) -> None:
    daemon = daemons()
    daemon.solver = fail(grpc.StatusCode.UNKNOWN, "failed to push reg.example.com/app:1: "
                         "unexpected status from POST request to https://reg.example.com/v2/app/"
                         "blobs/uploads/: 401 Unauthorized")
    options = _options(context_dir, daemon, tag=("reg.example.com/app:1",), push=True)
    with pytest.raises(RegistryAuthError) as info:
        run_build(options, captured.console)
    assert "reg.example.com" in info.value.one_line()
    assert info.value.exit_code == ExitCode.REGISTRY_AUTH


def test_status_that_races_the_solve_is_asked_again(daemons: Callable[[], FakeBuildkitd],
                                                   context_dir: Path, captured: Captured) -> None:
    daemon = daemons()
    daemon.unknown_job_first = True
    daemon.updates = [step("[1/1] COPY hello /hello")]
    assert run_build(_options(context_dir, daemon), captured.console) == 0
    assert "COPY hello /hello" in captured.stderr.getvalue()


def test_several_outputs_on_an_old_daemon_are_refused_before_the_solve(
        daemons: Callable[[], FakeBuildkitd], context_dir: Path, captured: Captured,
        tmp_path: Path) -> None:
    daemon = daemons()
    daemon.version = "v0.12.5"
    options = _options(context_dir, daemon, output=(f"type=local,dest={tmp_path / 'out'}",
                                                    f"type=tar,dest={tmp_path / 'out.tar'}"))
    with pytest.raises(OutputError, match="writes only one output per build"):
        run_build(options, captured.console)
    assert daemon.solves == []


def test_debug_timings_count_from_the_invocation_start(daemons: Callable[[], FakeBuildkitd],
                                                      context_dir: Path, captured: Captured) -> None:
    daemon = daemons()
    assert run_build(_options(context_dir, daemon), captured.console) == 0
    lines = [line for line in captured.stderr.getvalue().splitlines()
             if line.endswith("s after start")]
    labels = [line.removeprefix("debug: ").rsplit(" ", 3)[0] for line in lines]
    assert labels == ["solve sent", "solve done", "status drained", "reported", "cleaned up"]

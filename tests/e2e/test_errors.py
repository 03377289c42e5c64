"""Bad input and failures: one line on stderr, a distinct exit code, no traceback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kubectl_build.errors import ExitCode
from tests.e2e.helpers import Run, Testbed, run_cli

pytestmark = pytest.mark.e2e


def _one_line(run: Run) -> str:
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


def _ctx(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def test_failing_run_step(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo about to fail\nRUN echo last words >&2 && exit 3\n")
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "plain",
                  "--no-cache")
    assert run.code == ExitCode.BUILD_FAILED
    line = _one_line(run)
    assert "exit code: 3" in line or "exit code 3" in line
    assert "Dockerfile:3" in line
    assert "last words" in run.stderr  # the failing step's log is shown


def test_unreachable_daemon(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\n")
    started = time.monotonic()
    run = run_cli(str(ctx), "--buildkit-host", f"unix://{tmp_path}/nothing.sock")
    assert run.code == ExitCode.DAEMON_UNREACHABLE
    assert "cannot reach buildkitd" in _one_line(run)
    assert time.monotonic() - started < 60


def test_push_with_wrong_password(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY Dockerfile /\n")
    config = tmp_path / "docker"
    config.mkdir()
    import base64
    bad = base64.b64encode(b"testuser:wrong-password").decode()
    (config / "config.json").write_text(json.dumps(
        {"auths": {testbed.registry_tls: {"auth": bad}}}))
    run = run_cli(str(ctx), "-t", f"{testbed.registry_tls}/e2e/denied:1", "--push",
                  "--buildkit-host", testbed.buildkit_host, "--progress", "plain",
                  env={"DOCKER_CONFIG": str(config)})
    assert run.code == ExitCode.REGISTRY_AUTH
    line = _one_line(run)
    assert testbed.registry_tls in line
    assert "wrong-password" not in run.stderr + run.stdout


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--platform", "linux/notanarch"], ExitCode.USAGE, "invalid platform"),
    (["--secret", "id=x,src=/does/not/exist"], ExitCode.USAGE, "secret"),
    (["--output", "type=bogus"], ExitCode.USAGE, "output"),
    (["--build-arg", "=value"], ExitCode.USAGE, "build-arg"),
    (["--push"], ExitCode.USAGE, "push"),
    (["-f", "/does/not/exist/Dockerfile"], ExitCode.CONTEXT, "Dockerfile"),
])
def test_bad_flags(args: list[str], code: int, needle: str, testbed: Testbed,
                   tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\n")
    run = run_cli(str(ctx), *args, "--buildkit-host", testbed.buildkit_host)
    assert run.code == code, run.stderr
    assert needle.lower() in _one_line(run).lower()


def test_missing_context(testbed: Testbed, tmp_path: Path) -> None:
    run = run_cli(str(tmp_path / "nope"), "--buildkit-host", testbed.buildkit_host)
    assert run.code == ExitCode.CONTEXT
    assert "not found" in _one_line(run)


def test_debug_shows_traceback(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\n")
    run = run_cli(str(ctx), "--buildkit-host", f"unix://{tmp_path}/none.sock", "--debug")
    assert run.code == ExitCode.DAEMON_UNREACHABLE
    assert "Traceback" in run.stderr

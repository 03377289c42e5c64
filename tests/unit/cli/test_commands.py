"""CLI tests, in process: exit codes, the one stderr line, help and lazy imports.

The build itself is replaced by a fake ``kubectl_build.run.build`` module, so these tests
show that bad input fails before anything would touch a daemon or a cluster.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubectl_build import __main__ as entry
from kubectl_build import __version__
from kubectl_build.cli import commands as cli
from kubectl_build.cli.build_help import BUILD_HELP
from kubectl_build.console import Console
from kubectl_build.errors import BuildFailedError, ExitCode
from kubectl_build.options.build import BuildOptions

# Variables the flags read; cleared so the developer's shell cannot change the outcome.
CLEAN_ENV: dict[str, str | None] = {
    name: None
    for name in ("BUILDKIT_HOST", "BUILDKIT_PROGRESS", "BUILDKIT_BUILDER",
                 "DOCKER_DEFAULT_PLATFORM", "SSH_AUTH_SOCK")
}  # fmt: skip


@dataclass
class Outcome:
    """What one in-process run of an entry point produced."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """The stderr text, asserted to be exactly one line."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        return lines[0]


@dataclass
class FakeBuild:
    """Stands in for kubectl_build.run.build.run_build and records its calls."""

    result: int | BaseException = 0
    calls: list[tuple[BuildOptions, Console]] = field(default_factory=list)

    def run_build(self, options: BuildOptions, console: Console, warm: object = None) -> int:
        self.calls.append((options, console))
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> FakeBuild:
    fake = FakeBuild()
    module = types.ModuleType("kubectl_build.run.build")
    module.run_build = fake.run_build  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kubectl_build.run.build", module)
    return fake


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A current directory holding the context ``ctx`` with a Dockerfile."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(main: Callable[[list[str]], int], *args: str, env: dict[str, str] | None = None) -> Outcome:
    """Run an entry point in process with captured streams and a clean environment."""
    with CliRunner().isolation(env={**CLEAN_ENV, **(env or {})}) as (out, err, _):
        code = main(list(args))
    return Outcome(code, out.getvalue().decode(), err.getvalue().decode())


def build(*args: str, env: dict[str, str] | None = None) -> Outcome:
    return invoke(entry.build_main, *args, env=env)


def buildkit(*args: str) -> Outcome:
    return invoke(entry.buildkit_main, *args)


# Help, version, imports -----------------------------------------------------------------


def test_static_help_matches_click() -> None:
    # The fast path prints a copy; regenerate it with scripts/gen_build_help.py when this fails.
    assert cli.render_build_help() == BUILD_HELP


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag: str) -> None:
    fast = build(flag)
    assert (fast.code, fast.stderr) == (0, "")
    assert fast.stdout.startswith("Usage: kubectl build [OPTIONS] PATH | URL | -\n")
    for option in ("--tag", "--platform", "--secret", "--output", "--buildkit-host"):
        assert option in fast.stdout
    slow = invoke(lambda argv: entry.run("build", argv), flag)
    assert (slow.code, slow.stdout) == (0, fast.stdout)


def test_help_with_other_flags_goes_through_click() -> None:
    outcome = build("--push", "--help")
    assert outcome.code == 0 and outcome.stdout == BUILD_HELP + "\n"


def test_click_runner_help() -> None:
    result = CliRunner().invoke(cli.build, ["--help"], prog_name="kubectl build")
    assert result.exit_code == 0 and "Usage: kubectl build" in result.output


def test_version() -> None:
    assert build("--version").stdout == f"kubectl-build {__version__}\n"
    slow = invoke(lambda argv: entry.run("build", argv), "--version")
    assert (slow.code, slow.stdout) == (0, f"kubectl-build {__version__}\n")


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_is_quiet(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert entry.build_main(["--help"]) == ExitCode.FAILURE
    assert capsys.readouterr().err == ""


def _exit_now(code: str, stdout: int = subprocess.PIPE
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys\n"
                           "from kubectl_build.__main__ import exit_now\n" + code],
                          stdout=stdout, stderr=subprocess.PIPE, text=True, check=False,
                          timeout=60, env={k: v for k, v in os.environ.items()
                                           if k != "PYTHONUNBUFFERED"})


def test_exit_now_flushes_what_was_written_and_keeps_the_code() -> None:
    done = _exit_now("sys.stdout.write('result'); sys.stderr.write('progress'); exit_now(3)")
    assert (done.returncode, done.stdout, done.stderr) == (3, "result", "progress")


def test_exit_now_fails_a_successful_run_whose_output_was_lost() -> None:
    # As the interpreter would at exit: stdout that cannot be flushed turns 0 into 120.
    for code, expected in ((0, 120), (4, 4)):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone: the buffered write fails on flush
        try:
            done = _exit_now(f"sys.stdout.write('x'); exit_now({code})", stdout=write_end)
        finally:
            os.close(write_end)
        assert done.returncode == expected, done.stderr


def test_the_program_ends_with_the_commands_code() -> None:
    # build_main() without argv is the program itself: it exits (os._exit) with the code.
    ok = subprocess.run([sys.executable, "-m", "kubectl_build", "--version"],
                        capture_output=True, text=True, timeout=60, check=False)
    assert (ok.returncode, ok.stdout) == (0, f"kubectl-build {__version__}\n")
    bad = subprocess.run([sys.executable, "-m", "kubectl_build", "--no-such-flag", "."],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == ExitCode.USAGE and len(bad.stderr.splitlines()) == 1, bad.stderr


def test_the_early_exec_starts_only_for_the_kubectl_bridge(
        workdir: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubectl_build.agent.warm_exec import WarmStart

    started: list[tuple[str, bool]] = []
    monkeypatch.setattr(WarmStart, "start", lambda _self, *args, read_secret: started.append(
        (args[-1], read_secret)))
    assert build("ctx", "--transport", "websocket", "--builder", "ws").code == 0
    assert build("ctx", "--buildkit-host", "tcp://127.0.0.1:1", "--builder", "bk").code == 0
    assert build("ctx", "--builder", "kc").code == 0
    # An explicit --registry-secret is read and checked before the build, not early.
    assert build("ctx", "--builder", "rs", "--registry-secret", "creds").code == 0
    assert started == [("kc", True), ("rs", False)]


def _modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_cli_import_is_light() -> None:
    loaded = _modules_after("import kubectl_build.cli.commands")
    heavy = {"grpc", "kubernetes", "google.protobuf", "kubectl_build.run.build", "rich"}
    assert not heavy & loaded


def test_fast_help_does_not_import_click() -> None:
    loaded = _modules_after(
        "import io, contextlib\n"
        "from kubectl_build.__main__ import build_main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    build_main(['--help'])"
    )
    assert "kubectl_build.__main__" in loaded
    assert "click" not in loaded


# Bad input: one line, its exit code, and no build started ------------------------------


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (("--platform", "linux/foo", "ctx"), ExitCode.USAGE,
         'error: invalid platform "linux/foo": unknown architecture "foo"; '
         "use OS/ARCH[/VARIANT] such as linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6, "
         'linux/386, linux/ppc64le, linux/s390x, windows/amd64, or "local"'),
        (("--secret", "id=tok,src=no-such-file", "ctx"), ExitCode.USAGE,
         'error: secret file "no-such-file" for --secret id=tok not found; '
         "use id=ID,src=FILE or id=ID,env=VARIABLE"),
        (("--secret", "src=x", "ctx"), ExitCode.USAGE,
         'error: invalid --secret "src=x": missing id=; use id=ID,src=FILE or id=ID,env=VARIABLE'),
        (("-o", "type=oci", "ctx"), ExitCode.USAGE,
         'error: invalid --output "type=oci": type=oci needs dest=FILE or dest=-; '
         "use type=local,dest=DIR, type=tar|oci|docker,dest=FILE (or dest=- for stdout), "
         "type=oci|docker,tar=false,dest=DIR, type=image,name=NAME[,push=true], type=registry, "
         "or a directory"),
        (("--build-arg", "=1", "ctx"), ExitCode.USAGE,
         'error: invalid --build-arg "=1": expected KEY=VALUE or KEY'),
        (("missing-dir",), ExitCode.CONTEXT,
         'error: build context "missing-dir" not found; '
         "pass a directory, a Git or HTTP(S) URL, or - to read stdin"),
        (("-f", "missing.Dockerfile", "ctx"), ExitCode.CONTEXT,
         'error: Dockerfile "missing.Dockerfile" not found; '
         "pass its path with -f, or add a Dockerfile to the context"),
        (("--push", "ctx"), ExitCode.USAGE,
         "error: nothing to push: the image has no name; "
         "tag it with -t REGISTRY/NAME[:TAG] or pass --output type=image,name=..."),
        (("--progress", "fancy", "ctx"), ExitCode.USAGE,
         'error: invalid --progress "fancy"; use one of auto, tty, plain, quiet, rawjson, none'),
        (("-t", "Bad:Tag", "ctx"), ExitCode.USAGE,
         'error: invalid tag "Bad:Tag": repository name must be lowercase; '
         "use [REGISTRY/]REPOSITORY[:TAG]"),
        (("--buildkit-host", "docker://x", "ctx"), ExitCode.USAGE,
         'error: unsupported buildkit host "docker://x"; '
         "use unix:///path/to/buildkitd.sock or tcp://HOST:PORT"),
        (("--no-such-flag", "ctx"), ExitCode.USAGE,
         "error: No such option '--no-such-flag'; "
         "did you mean '--no-cache-filter'? see 'kubectl build --help'"),
        (("--zzz", "ctx"), ExitCode.USAGE,
         "error: No such option '--zzz'; see 'kubectl build --help'"),
        (("--r", "ctx"), ExitCode.USAGE,  # the hidden --rm is never offered
         "error: No such option '--r'; see 'kubectl build --help'"),
        (("--progres", "ctx"), ExitCode.USAGE,
         "error: No such option '--progres'; did you mean '--progress'? see 'kubectl build --help'"),
        ((), ExitCode.USAGE,
         "error: Missing argument 'PATH | URL | -'; see 'kubectl build --help'"),
        (("ctx", "other"), ExitCode.USAGE,
         "error: Got unexpected extra argument (other); see 'kubectl build --help'"),
        (("ctx", "-t"), ExitCode.USAGE,
         "error: Option '-t' requires an argument; see 'kubectl build --help'"),
    ],
)  # fmt: skip
def test_bad_input(workdir: Path, fake_build: FakeBuild, args: tuple[str, ...], code: int, line: str) -> None:
    outcome = build(*args)
    assert (outcome.code, outcome.error_line, outcome.stdout) == (code, line, "")
    assert fake_build.calls == []


def test_bad_environment_value(workdir: Path, fake_build: FakeBuild) -> None:
    outcome = build("ctx", env={"BUILDKIT_PROGRESS": "loud"})
    assert outcome.code == ExitCode.USAGE
    assert outcome.error_line == (
        'error: invalid --progress "loud"; use one of auto, tty, plain, quiet, rawjson, none'
    )


# Hand-off to the build -----------------------------------------------------------------


def test_options_reach_the_build(workdir: Path, fake_build: FakeBuild) -> None:
    outcome = build(
        "-t", "reg.local/app:1", "--platform", "linux/amd64,linux/arm64",
        "--build-arg", "A=1", "--push", "--progress", "plain", "--context", "kind",
        "-n", "ci", "ctx",
        env={"BUILDKIT_HOST": "tcp://bk:1234"},
    )  # fmt: skip
    assert (outcome.code, outcome.stderr) == (0, "")
    ((options, console),) = fake_build.calls
    assert options.tags == ("reg.local/app:1",)
    assert [str(p) for p in options.platforms] == ["linux/amd64", "linux/arm64"]
    assert dict(options.build_args) == {"A": "1"}
    assert options.outputs[0].pushes and options.progress == "plain"
    assert (options.kube_context, options.namespace) == ("kind", "ci")
    assert options.buildkit_host == "tcp://bk:1234"
    assert not console.quiet and not console.debug


def test_legacy_docker_flags_are_accepted_and_ignored(workdir: Path, fake_build: FakeBuild) -> None:
    args = ("--rm", "--force-rm", "--compress", "-m", "2g", "--cpu-shares", "512", "--isolation", "x")
    outcome = build(*args, "ctx")
    assert (outcome.code, outcome.stderr) == (0, "")
    ((options, _),) = fake_build.calls
    assert options.context == "ctx"
    assert "--force-rm" not in BUILD_HELP


def test_quiet_and_debug_reach_the_console(workdir: Path, fake_build: FakeBuild) -> None:
    assert build("-q", "--debug", "ctx").code == 0
    ((options, console),) = fake_build.calls
    assert options.progress == "quiet" and console.quiet and console.debug


def test_build_exit_code_is_returned(workdir: Path, fake_build: FakeBuild) -> None:
    fake_build.result = 7
    assert build("ctx").code == 7


def test_build_error_is_one_line(workdir: Path, fake_build: FakeBuild) -> None:
    fake_build.result = BuildFailedError("RUN exit 3 failed", "see the log above")
    outcome = build("ctx")
    assert outcome.code == ExitCode.BUILD_FAILED
    assert outcome.error_line == "error: RUN exit 3 failed; see the log above"


def test_build_error_traceback_with_debug(workdir: Path, fake_build: FakeBuild) -> None:
    fake_build.result = BuildFailedError("RUN exit 3 failed", "see the log above")
    outcome = build("--debug", "ctx")
    assert outcome.code == ExitCode.BUILD_FAILED
    assert "Traceback" in outcome.stderr
    assert outcome.stderr.splitlines()[-1] == "error: RUN exit 3 failed; see the log above"


def test_ctrl_c_exits_130(workdir: Path, fake_build: FakeBuild) -> None:
    fake_build.result = KeyboardInterrupt()
    outcome = build("ctx")
    assert outcome.code == ExitCode.INTERRUPTED
    assert "Traceback" not in outcome.stderr


def test_unexpected_error_is_one_line(workdir: Path, fake_build: FakeBuild) -> None:
    fake_build.result = RuntimeError("boom")
    outcome = build("ctx")
    assert outcome.code == ExitCode.FAILURE
    assert outcome.error_line == (
        "error: internal error: RuntimeError: boom; rerun with --debug and report it"
    )
    debug = build("ctx", "--debug")
    assert "Traceback" in debug.stderr and "RuntimeError: boom" in debug.stderr


# kubectl buildkit ------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "line"), [
    (("create", "--node-selector", "disk"),
     "error: invalid --node-selector 'disk'; use KEY=VALUE with label syntax, comma-separated"),
    (("create", "Bad_Name"), "error: invalid builder name 'Bad_Name'; use 1-52 lower-case letters, "
     "digits and '-', starting and ending alphanumeric"),
    (("create", "--requests", "cpu=lots"), "error: invalid --requests quantity cpu='lots'; "
     "use a Kubernetes quantity such as 500m, 2, 512Mi or 10Gi"),
    (("create", "--worker", "containerd", "--cache-size", "10Gi"),
     "error: --cache-size does not apply to the containerd worker; its cache already persists on the "
     "node (containerd's store and /var/lib/buildkit/NAMESPACE/NAME); use --worker runc for a volume"),
    (("prune", "--keep-duration", "soon"),
     "error: invalid --keep-duration 'soon'; use a duration such as 90s, 30m, 24h or 7d"),
])
def test_buildkit_bad_input_fails_before_the_cluster(args: tuple[str, ...], line: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # An unreachable kubeconfig proves nothing was contacted: the usage error comes first.
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    outcome = buildkit(*args)
    assert (outcome.code, outcome.error_line) == (ExitCode.USAGE, line)


@pytest.mark.parametrize("args", [("create", "--worker", "nope"), ("rm",), ("ls", "--frob")])
def test_buildkit_click_usage_errors(args: tuple[str, ...]) -> None:
    assert buildkit(*args).code == ExitCode.USAGE


def test_buildkit_version_and_help() -> None:
    assert buildkit("version").stdout == f"kubectl-build {__version__}\n"
    outcome = buildkit("--help")
    assert outcome.code == 0 and "Usage: kubectl buildkit [OPTIONS] COMMAND" in outcome.stdout
    outcome = buildkit("frobnicate")
    assert outcome.code == ExitCode.USAGE
    assert outcome.error_line == ("error: No such command 'frobnicate'; see 'kubectl buildkit --help'")

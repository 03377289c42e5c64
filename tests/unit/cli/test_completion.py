"""Shell completion: the scripts run in a real bash, and kubectl's plugin completion hook.

The installed console scripts (next to this interpreter) are used, because completion is
a conversation between a shell (or kubectl) and a program found on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_build import __main__ as entry
from kubectl_build.cli import commands, completion
from kubectl_build.errors import ExitCode

BIN = Path(sys.executable).parent
PROGRAMS = commands.programs()


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def _bash(script: str) -> str:
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                          text=True, env=_env(), timeout=60, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = subprocess.run([str(BIN / "kubectl-build"), "completion", "bash"], capture_output=True,
                         text=True, env=_env(), timeout=60, check=True)
    path = tmp_path_factory.mktemp("completion") / "kubectl-build.bash"
    path.write_text(out.stdout)
    return path


def test_bash_script_registers_both_programs(bash_script: Path) -> None:
    out = _bash(f"source {bash_script}; complete -p kubectl-build; complete -p kubectl-buildkit")
    assert "-F _kubectl_build_completion kubectl-build\n" in out
    assert "-F _kubectl_buildkit_completion kubectl-buildkit\n" in out


def test_bash_completes_an_option_through_the_script(bash_script: Path) -> None:
    out = _bash(f"source {bash_script}; COMP_WORDS=(kubectl-build . --pl); COMP_CWORD=2; "
                '_kubectl_build_completion kubectl-build; printf "%s\\n" "${COMPREPLY[@]}"')
    assert out.split() == ["--platform"]


def test_bash_completes_buildkit_subcommands(bash_script: Path) -> None:
    out = _bash(f"source {bash_script}; COMP_WORDS=(kubectl-buildkit ver); COMP_CWORD=1; "
                '_kubectl_buildkit_completion kubectl-buildkit; printf "%s\\n" "${COMPREPLY[@]}"')
    assert out.split() == ["version"]


def test_scripted_request_protocol() -> None:
    done = subprocess.run(
        [str(BIN / "kubectl-build")], capture_output=True, text=True, timeout=60, check=True,
        env=_env(COMP_WORDS="kubectl-build --pl", COMP_CWORD="1",
                 _KUBECTL_BUILD_COMPLETE="bash_complete"),
    )  # fmt: skip
    assert done.stdout.split() == ["plain,--platform"]


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("zsh", "#compdef kubectl-build\n"),
        ("fish", "complete --no-files --command kubectl-build "),
        ("bash", "complete -o nosort -F _kubectl_buildkit_completion kubectl-buildkit\n"),
    ],
)
def test_scripts_for_every_shell(shell: str, marker: str) -> None:
    text = completion.script(shell, PROGRAMS)
    assert marker in text and "_KUBECTL_BUILDKIT_COMPLETE" in text
    checker = shutil.which(shell)
    if checker:  # a syntax check where the shell exists (bash always does)
        subprocess.run([checker, "-n"], input=text, text=True, check=True, timeout=60)


def test_completion_script_errors() -> None:
    out = subprocess.run([str(BIN / "kubectl-build"), "completion", "tcsh"], capture_output=True,
                         text=True, env=_env(), timeout=60, check=False)
    assert out.returncode == 2
    assert out.stderr == "error: no completion for shell 'tcsh'; use one of: bash, zsh, fish\n"


def test_hook_answer_in_cobra_form() -> None:
    answer = completion.answer("kubectl-build", ["--pl"], PROGRAMS)
    assert [value for value, _ in answer.candidates] == ["--platform"]
    assert answer.render().endswith(":4\n")
    # A file option's value: no candidates, the shell completes file names; the
    # context: directories.
    assert completion.answer("kubectl-build", ["-f", ""], PROGRAMS).render() == ":0\n"
    assert completion.answer("kubectl-build", [""], PROGRAMS).render() == ":16\n"
    assert [v for v, _ in completion.answer("kubectl-buildkit", ["ver"], PROGRAMS).candidates] == ["version"]


def test_hook_for_another_plugin_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert entry.kubectl_complete_main("nope", ["x"]) == 1
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "error: no completion for kubectl nope\n")


def test_hook_executables_through_kubectl() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to test its plugin completion hook"
    out = subprocess.run([kubectl, "__complete", "build", "--pl"], capture_output=True, text=True,
                         env=_env(), timeout=60, check=True).stdout
    assert out.splitlines()[0].startswith("--platform\t") and out.splitlines()[-1] == ":4"
    out = subprocess.run([kubectl, "__complete", "buildkit", "v"], capture_output=True, text=True,
                         env=_env(), timeout=60, check=True).stdout
    assert out.splitlines()[0].startswith("version\t")


def test_completion_word_is_still_a_context_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # `kubectl build completion` (one word) stays a build of ./completion; only the
    # two-word form, never a valid build, prints a script.
    monkeypatch.chdir(tmp_path)
    assert entry.build_main(["completion"]) == ExitCode.CONTEXT
    assert 'build context "completion" not found' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["--progress", "p"], ["plain"]),
        (["--network", ""], ["default", "host", "none"]),
        (["--allow", "s"], ["security.insecure"]),
        (["--platform", "linux/amd64,linux/arm6"], ["linux/amd64,linux/arm64"]),
        (["buildkit-ctx", "--platform", "loc"], ["local"]),
    ],
)
def test_option_values(words: list[str], expected: list[str]) -> None:
    assert [v for v, _ in completion.answer("kubectl-build", words, PROGRAMS).candidates] == expected


def test_bash_completes_values_and_directories(bash_script: Path) -> None:
    out = _bash(f"source {bash_script}; COMP_WORDS=(kubectl-build --progress pl); COMP_CWORD=2; "
                '_kubectl_build_completion kubectl-build; echo "${COMPREPLY[@]}"')
    assert out.split() == ["plain"]
    # The context: the script switches bash to directory names on a `dir` answer.
    done = subprocess.run(
        [str(BIN / "kubectl-build")], capture_output=True, text=True, timeout=60, check=True,
        env=_env(COMP_WORDS="kubectl-build ", COMP_CWORD="1", _KUBECTL_BUILD_COMPLETE="bash_complete"),
    )  # fmt: skip
    assert done.stdout.split() == ["dir,"]


def test_the_buildx_surface_flags_complete_their_values() -> None:
    def values(*args: str) -> list[str]:
        return [v for v, _ in completion.answer("kubectl-build", list(args), PROGRAMS).candidates]

    assert values("--provenance", "mode=") == ["mode=min", "mode=max"]
    assert values("--annotation", "man") == ["manifest:", "manifest-descriptor:"]
    assert values("--progress", "n") == ["none"]
    assert values("--call", "ch") == ["check", "check,format=json"]
    assert "--check" in values("--che")
    assert "--build-context" in values("--build-c")
    assert values("--imag") == []  # imagetools is kubectl buildkit's
    assert values("--rm") == values("--force-r") == []  # hidden flags are never offered

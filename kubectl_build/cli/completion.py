"""Shell completion: scripts for bash, zsh and fish, and kubectl's plugin completion hook.

Two ways in:

* ``kubectl-build completion SHELL`` prints a script (click's completion machinery) that
  completes the ``kubectl-build`` and ``kubectl-buildkit`` commands themselves; the script
  calls the program back with ``_KUBECTL_BUILD_COMPLETE=<shell>_complete``.
* kubectl 1.26 and later complete ``kubectl build <TAB>`` by running the executable
  ``kubectl_complete-build`` from PATH with the words after ``build`` (the last one being
  the word under the cursor). It answers in cobra's ``__complete`` format: one candidate
  per line (``value<TAB>description``), then ``:<directive>``.

The click commands are handed in (``Programs``, from cli/commands.py ``programs()``): the
commands module runs ``kubectl buildkit completion``, so this one does not import it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import click
from click.shell_completion import CompletionItem, ShellComplete, get_completion_class

from kubectl_build.errors import ExitCode, KubectlBuildError, UsageError

Programs = Mapping[str, click.Command]
"""The click command behind each program name in PROGRAMS."""

SHELLS = ("bash", "zsh", "fish")
PROGRAMS = ("kubectl-build", "kubectl-buildkit")

# cobra's ShellCompDirective bits, as kubectl's completion script reads them.
DIRECTIVE_DEFAULT = 0  # no candidates: the shell completes file names
DIRECTIVE_NO_FILES = 4
DIRECTIVE_DIRS = 16


# Option values click cannot know (the options are plain strings in cli.py).
CHOICES: dict[str, tuple[str, ...]] = {
    "--progress": ("auto", "tty", "plain", "quiet", "rawjson", "none"),
    "--network": ("default", "host", "none"),
    "--call": ("build", "check", "outline", "targets", "check,format=json", "outline,format=json",
               "targets,format=json", "subrequests.describe"),
    "--allow": ("network.host", "security.insecure"),
    "--sbom": ("true", "false", "generator="),
    "--provenance": ("true", "false", "mode=min", "mode=max"),
    "--attest": ("type=sbom", "type=provenance", "type=provenance,mode=max"),
    "--ulimit": tuple(f"{name}=" for name in ("core", "memlock", "nofile", "nproc", "stack")),
    "--annotation": ("index:", "manifest:", "manifest-descriptor:", "index-descriptor:"),
    "--platform": ("local", "linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/386",
                   "linux/ppc64le", "linux/s390x", "linux/riscv64"),
}  # fmt: skip
FILE_OPTIONS = frozenset(
    {"-f", "--file", "--iidfile", "--metadata-file", "--tlscacert", "--tlscert", "--tlskey",
     "--kubeconfig", "--config", "--custom-ca"}
)  # fmt: skip


def _values(args: Sequence[str], incomplete: str) -> list[CompletionItem[str]] | None:
    """Completions for an option's value or the context path; None leaves it to click."""
    previous = args[-1] if args else ""
    if previous in FILE_OPTIONS:
        return [CompletionItem(incomplete, type="file")]
    if previous in CHOICES:
        # --platform takes a comma list: complete its last element.
        head, comma, last = incomplete.rpartition(",")
        prefix = head + comma
        return [CompletionItem(prefix + v) for v in CHOICES[previous] if v.startswith(last)]
    return None


class _ValueCompletion(ShellComplete):
    """Adds option values and the context directory to click's completions."""

    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem[str]]:
        if self.prog_name == "kubectl-build":
            values = _values(args, incomplete)
            if values is not None:
                return values
        items = super().get_completions(args, incomplete)
        if not items and self.prog_name == "kubectl-build" and not incomplete.startswith("-"):
            return [CompletionItem(incomplete, type="dir")]  # the build context
        return items


def _shell_class(shell: str) -> type[ShellComplete]:
    base = get_completion_class(shell)
    assert base is not None  # every name in SHELLS is one of click's
    return type(f"{base.__name__}Values", (_ValueCompletion, base), {})


def complete_var(program: str) -> str:
    """The environment variable the completion scripts set: ``_KUBECTL_BUILD_COMPLETE``."""
    return f"_{program}_COMPLETE".replace("-", "_").upper()


def source(shell: str, programs: Programs, program: str = "kubectl-build") -> str:
    """The completion script of ``program`` for ``shell`` (one of SHELLS)."""
    if shell not in SHELLS:
        raise UsageError(f"no completion for shell {shell!r}", f"use one of: {', '.join(SHELLS)}")
    return _shell_class(shell)(programs[program], {}, program, complete_var(program)).source()


def script(shell: str, programs: Programs) -> str:
    """Completion for both programs, as ``kubectl-build completion SHELL`` prints it."""
    return "\n".join(source(shell, programs, program) for program in PROGRAMS)


def shell_request(program: str, programs: Programs) -> int:
    """Answer the completion request of a sourced script; its exit code.

    The environment holds the request (``_KUBECTL_BUILD[KIT]_COMPLETE``); FAILURE means it
    is not one we know.
    """
    instruction = os.environ.get(complete_var(program), "")
    shell, _, action = instruction.partition("_")
    if shell not in SHELLS or action not in ("source", "complete"):
        return ExitCode.FAILURE
    comp = _shell_class(shell)(programs[program], {}, program, complete_var(program))
    # Bytes, so that Windows does not turn the newlines into CRLF.
    sys.stdout.buffer.write((comp.source() if action == "source" else comp.complete() + "\n").encode())
    sys.stdout.flush()
    return ExitCode.OK


@dataclass(frozen=True)
class Answer:
    """Candidates and the cobra directive for one ``kubectl __complete`` request."""

    candidates: list[tuple[str, str]]
    directive: int

    def render(self) -> str:
        """Cobra's output: ``value<TAB>help`` lines, then ``:directive``."""
        lines = [f"{value}\t{help_}" if help_ else value for value, help_ in self.candidates]
        return "".join(f"{line}\n" for line in [*lines, f":{self.directive}"])


class _Words(_ValueCompletion):
    """click's completion resolution for words handed over as a list (no shell script)."""

    name = "kubectl"
    source_template = ""

    def format_completion(self, item: CompletionItem[str]) -> str:
        return str(item.value)


def answer(program: str, words: Sequence[str], programs: Programs) -> Answer:
    """Complete ``words`` (the last one is the word under the cursor) for ``program``."""
    args, incomplete = list(words[:-1]), (words[-1] if words else "")
    comp = _Words(programs[program], {}, program, complete_var(program))
    items = comp.get_completions(args, incomplete)
    kinds = {item.type for item in items}
    if "file" in kinds:
        return Answer([], DIRECTIVE_DEFAULT)
    if "dir" in kinds:
        return Answer([], DIRECTIVE_DIRS)
    plain = [(str(item.value), " ".join((item.help or "").split())) for item in items]
    return Answer(plain, DIRECTIVE_NO_FILES if plain else DIRECTIVE_DEFAULT)


def kubectl_answer(plugin: str, words: Sequence[str], programs: Programs) -> str:
    """``kubectl_complete-<plugin> WORDS...``: cobra's completion answer, rendered.

    Raises:
        KubectlBuildError: ``plugin`` is none of ours.
    """
    program = f"kubectl-{plugin}"
    if program not in PROGRAMS:
        raise KubectlBuildError(f"no completion for kubectl {plugin}")
    return answer(program, words, programs).render()

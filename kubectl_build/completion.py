"""Shell completion: scripts for bash, zsh and fish, and kubectl's plugin completion hook.

Two ways in:

* ``kubectl-build completion SHELL`` prints a script (click's completion machinery) that
  completes the ``kubectl-build`` and ``kubectl-buildkit`` commands themselves; the script
  calls the program back with ``_KUBECTL_BUILD_COMPLETE=<shell>_complete``.
* kubectl 1.26 and later complete ``kubectl build <TAB>`` by running the executable
  ``kubectl_complete-build`` from PATH with the words after ``build`` (the last one being
  the word under the cursor). It answers in cobra's ``__complete`` format: one candidate
  per line (``value<TAB>description``), then ``:<directive>``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import click
from click.shell_completion import CompletionItem, ShellComplete, get_completion_class

SHELLS = ("bash", "zsh", "fish")
PROGRAMS = ("kubectl-build", "kubectl-buildkit")

# cobra's ShellCompDirective bits, as kubectl's completion script reads them.
DIRECTIVE_DEFAULT = 0  # no candidates: the shell completes file names
DIRECTIVE_NO_FILES = 4
DIRECTIVE_DIRS = 16


def complete_var(program: str) -> str:
    """The environment variable the completion scripts set: ``_KUBECTL_BUILD_COMPLETE``."""
    return f"_{program}_COMPLETE".replace("-", "_").upper()


def _command(program: str) -> click.Command:
    from kubectl_build import cli

    return cli.buildkit if program == "kubectl-buildkit" else cli.build


def source(shell: str, program: str = "kubectl-build") -> str:
    """The completion script of ``program`` for ``shell`` (one of SHELLS)."""
    if shell not in SHELLS:
        from kubectl_build.errors import UsageError

        raise UsageError(f"no completion for shell {shell!r}", f"use one of: {', '.join(SHELLS)}")
    comp_cls = get_completion_class(shell)
    assert comp_cls is not None  # every name in SHELLS is one of click's
    return comp_cls(_command(program), {}, program, complete_var(program)).source()


def script(shell: str) -> str:
    """Completion for both programs, as ``kubectl-build completion SHELL`` prints it."""
    return "\n".join(source(shell, program) for program in PROGRAMS)


def shell_request(program: str) -> int | None:
    """Answer a completion request from a sourced script, if the environment holds one.

    Returns the exit code when ``_KUBECTL_BUILD[KIT]_COMPLETE`` is set, else None.
    """
    instruction = os.environ.get(complete_var(program))
    if not instruction:
        return None
    from click.shell_completion import shell_complete

    return shell_complete(_command(program), {}, program, complete_var(program), instruction)


@dataclass(frozen=True)
class Answer:
    """Candidates and the cobra directive for one ``kubectl __complete`` request."""

    candidates: list[tuple[str, str]]
    directive: int

    def render(self) -> str:
        """Cobra's output: ``value<TAB>help`` lines, then ``:directive``."""
        lines = [f"{value}\t{help_}" if help_ else value for value, help_ in self.candidates]
        return "".join(f"{line}\n" for line in [*lines, f":{self.directive}"])


class _Words(ShellComplete):
    """click's completion resolution for words handed over as a list (no shell script)."""

    name = "kubectl"
    source_template = ""

    def format_completion(self, item: CompletionItem[str]) -> str:
        return str(item.value)


def answer(program: str, words: Sequence[str]) -> Answer:
    """Complete ``words`` (the last one is the word under the cursor) for ``program``."""
    args, incomplete = list(words[:-1]), (words[-1] if words else "")
    comp = _Words(_command(program), {}, program, complete_var(program))
    items = comp.get_completions(args, incomplete)
    kinds = {item.type for item in items}
    if "file" in kinds:
        return Answer([], DIRECTIVE_DEFAULT)
    if "dir" in kinds:
        return Answer([], DIRECTIVE_DIRS)
    plain = [(str(item.value), " ".join((item.help or "").split())) for item in items]
    return Answer(plain, DIRECTIVE_NO_FILES if plain else DIRECTIVE_DEFAULT)


def kubectl_hook_main(plugin: str, argv: Sequence[str]) -> int:
    """``kubectl_complete-<plugin> WORDS...``: print cobra's completion answer."""
    program = f"kubectl-{plugin}"
    if program not in PROGRAMS:
        sys.stderr.write(f"error: no completion for kubectl {plugin}\n")
        return 1
    sys.stdout.write(answer(program, argv).render())
    return 0


def complete_build_main() -> int:
    """The ``kubectl_complete-build`` console script."""
    return kubectl_hook_main("build", sys.argv[1:])


def complete_buildkit_main() -> int:
    """The ``kubectl_complete-buildkit`` console script."""
    return kubectl_hook_main("buildkit", sys.argv[1:])

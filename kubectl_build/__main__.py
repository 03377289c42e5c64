"""Entry points: ``kubectl-build`` and ``kubectl-buildkit`` (and ``python -m kubectl_build``).

This is the one place that turns exceptions into exit codes (``_mapped``): a
KubectlBuildError or a click usage error becomes a single ``error: ...`` line on stderr and
its exit code, Ctrl-C becomes 130, and a traceback is shown only with ``--debug``. It also
starts the local agent's server with the build it runs (``serve_agent``).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:

    from kubectl_build.agent.warm_exec import WarmStart
    from kubectl_build.cli.invocation import Invocation
    from kubectl_build.console import Console

# Only what a build handed to the local agent needs is imported at start: such a
# process does nothing else, so every module here is time on every warm build.


def _debug_requested(argv: Sequence[str]) -> bool:
    options = argv[: list(argv).index("--")] if "--" in argv else argv
    return "--debug" in options


def _dispatch(command_name: str, argv: Sequence[str], console: Console,
              invocation: Invocation | None = None) -> int:
    """Run a click command; click's own errors become one line here."""
    import click

    from kubectl_build.cli import commands as cli
    from kubectl_build.errors import ExitCode

    command = cli.build if command_name == "build" else cli.buildkit
    prog = cli.BUILD_PROG if command_name == "build" else cli.BUILDKIT_PROG
    if command_name == "build":
        from kubectl_build.cli.compat import spell_switches

        argv = spell_switches(list(argv))
    try:
        result = command.main(list(argv), prog_name=prog, standalone_mode=False, obj=invocation)
    except click.UsageError as err:
        from kubectl_build.cli.usage import usage_line

        console.error(usage_line(err, prog))
        return ExitCode.USAGE
    except click.Abort:
        # click turns Ctrl-C inside a command into Abort.
        return ExitCode.INTERRUPTED
    except click.ClickException as err:
        console.error(" ".join(err.format_message().split()))
        return err.exit_code
    return int(result) if isinstance(result, int) else ExitCode.OK


def _silence_stdout() -> None:
    # Python would report the broken pipe again when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _guarded(body: Callable[[], int], console: Console | None = None) -> int:
    """Run ``body``, turning every exception into one stderr line and an exit code.

    Without a console, one is made only when there is something to write: the hand-over
    to the local agent runs here and must not import more than it needs.
    """
    try:
        return body()
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - every one is mapped
        return _mapped(err, console)


def _mapped(err: BaseException, console: Console | None) -> int:
    """The one mapping from an exception to the exit code and the one stderr line."""
    import traceback

    from kubectl_build.console import Console
    from kubectl_build.errors import ExitCode, KubectlBuildError

    console = console if console is not None else Console()
    if isinstance(err, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(err, BrokenPipeError):
        # The reader went away (`kubectl build --help | head`): stop quietly.
        _silence_stdout()
        return ExitCode.FAILURE
    console.trace("".join(traceback.format_exception(err)).rstrip())
    if isinstance(err, KubectlBuildError):
        console.error(err.one_line())
        return err.exit_code
    # Last resort: one line, not a traceback.
    console.error(f"internal error: {type(err).__name__}: {err}; rerun with --debug and report it")
    return ExitCode.FAILURE


def run(command_name: str, argv: Sequence[str], invocation: Invocation | None = None) -> int:
    """Run one of the click commands and map every outcome to an exit code.

    Args:
        command_name: ``build`` or ``buildkit``.
        argv: the arguments after the program name.
        invocation: the start time and warm path a build runs with (default: this
            process's).

    Returns:
        The process exit code.
    """
    from kubectl_build.console import Console

    console = Console(debug=_debug_requested(argv))
    if invocation is not None:
        console.started = invocation.started
    return _guarded(lambda: _dispatch(command_name, argv, console, invocation), console)


def _show(text: str) -> int:
    from kubectl_build.console import Console
    from kubectl_build.errors import ExitCode

    console = Console()

    def show() -> int:
        console.result(text)
        return ExitCode.OK

    return _guarded(show, console)


def _completion(program: str, args: Sequence[str]) -> int | None:
    """Completion requests and ``completion SHELL``; None when args are something else."""
    wants_script = program == "kubectl-build" and len(args) == 2 and args[0] == "completion"
    if not wants_script and not os.environ.get(f"_{program.replace('-', '_').upper()}_COMPLETE"):
        return None
    from kubectl_build.cli import commands, completion

    if wants_script:
        # Never a valid build (one PATH only), so it cannot shadow a context directory.
        return _guarded(lambda: _show(completion.script(args[1], commands.programs())))
    return _guarded(lambda: completion.shell_request(program, commands.programs()))


def kubectl_complete_main(plugin: str, argv: Sequence[str]) -> int:
    """``kubectl_complete-<plugin> WORDS...``: print cobra's completion answer for kubectl."""
    from kubectl_build.cli import commands, completion
    from kubectl_build.console import Console
    from kubectl_build.errors import ExitCode

    console = Console()

    def answer() -> int:
        console.stdout.write(completion.kubectl_answer(plugin, argv, commands.programs()))
        return ExitCode.OK

    return _guarded(answer, console)


def complete_build_main() -> int:
    """The ``kubectl_complete-build`` console script."""
    return kubectl_complete_main("build", sys.argv[1:])


def complete_buildkit_main() -> int:
    """The ``kubectl_complete-buildkit`` console script."""
    return kubectl_complete_main("buildkit", sys.argv[1:])


def _version(args: Sequence[str]) -> int:
    """``--version``: the client's, plus the builder's with --buildkit-host or BUILDKIT_HOST."""
    from kubectl_build.cli import version
    from kubectl_build.console import Console

    console = Console(debug=_debug_requested(args))
    address = version.address_from_args(args, os.environ)
    return _guarded(lambda: version.report(console, address), console)


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` once everything written is out, skipping finalisation.

    By the time a command returns, its files (--iidfile, --metadata-file, the warm-builder
    cache) are closed, its kubectl children stopped and its temporary directories removed;
    tearing down grpc's threads and every module afterwards only adds up to 0.4 s to each
    build. What the interpreter would still do that matters is flushing stdout and stderr:
    done here, with its rule that a failed flush of a successful run exits 120.
    """
    status = code
    for stream in (sys.stdout, sys.stderr):
        if stream is None or stream.closed:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            # Imported only here: a build handed to the agent never loads the table.
            from kubectl_build.errors import ExitCode

            status = status or ExitCode.STDOUT_FLUSH
    os._exit(status)


def _finish(code: int, argv: Sequence[str] | None) -> int:
    # argv None: called as the program (console script, python -m, the frozen executable),
    # which ends here; with argv (tests, embedding) the code is returned as before.
    if argv is None:
        exit_now(code)
    return code


def build_main(argv: Sequence[str] | None = None) -> int:
    """The ``kubectl-build`` console script (also ``kubectl build`` via kubectl's plugins).

    Called without ``argv`` (as the program) it ends the process itself (``exit_now``),
    and hands the build to the local agent when one runs (kubectl_build.agent), else
    runs it here and, when it succeeds, leaves an agent for the next build.
    """
    if argv is not None:
        return _build(list(argv))
    args = sys.argv[1:]
    exit_now(_guarded(lambda: _delegated_or_here(args)))


def _delegated_or_here(args: list[str]) -> int:
    from kubectl_build.host.facts import agent_blocker

    if agent_blocker() is not None:  # the agent's modules need what this OS lacks
        return _build(args)
    from kubectl_build.agent import client as agent

    code = agent.delegate(args)
    if code is None:
        code = _build(args)
        from kubectl_build.errors import ExitCode  # loaded by the build: costs nothing now

        if code == ExitCode.OK:
            agent.start(args)
    return code


def build_in_process(args: list[str], started: float, warm: WarmStart) -> int:
    """A ``kubectl build`` run in this process, never delegated (the agent's copies).

    It is timed from ``started``, with the exec the agent kept ready in ``warm``.
    """
    from kubectl_build.cli.invocation import Invocation

    return _build(args, Invocation(started, warm))


def serve_agent(path: str) -> int:
    """The local agent's process: serves on ``path``, running builds with build_in_process.

    Started as ``python -m kubectl_build.agent``, or by the release executable's serve mode.
    """
    from kubectl_build.agent.server import main

    return main(path, build_in_process, _preload)


def _preload() -> None:
    """What a build imports, for the agent to import once before it forks copies."""
    import kubectl_build.cli.commands
    import kubectl_build.cli.invocation
    import kubectl_build.progress
    import kubectl_build.run.build
    import kubectl_build.run.cluster
    import kubectl_build.run.solve  # noqa: F401  (grpc, the stubs, the session services)
    from kubectl_build.kube.config import import_client

    # The API client only serves cold paths (creating a builder, listing nodes), slow anyway.
    import_client()


def _build(args: list[str], invocation: Invocation | None = None) -> int:
    code = _completion("kubectl-build", args)
    if code is not None:
        return code
    if args in (["--help"], ["-h"]):
        from kubectl_build.cli.build_help import BUILD_HELP  # no click: see there

        return _show(BUILD_HELP)
    if "--version" in (args[: args.index("--")] if "--" in args else args):
        return _version(args)
    if invocation is None:
        from kubectl_build.cli.invocation import Invocation
        from kubectl_build.host.signals import interrupt_on_ctrl_break

        interrupt_on_ctrl_break()
        invocation = Invocation()  # this process's start, no spare exec
    return run("build", args, invocation)


def buildkit_main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kubectl-buildkit`` console script (``kubectl buildkit``).

    Like ``build_main``, it ends the process itself when called without ``argv``.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    code = _completion("kubectl-buildkit", args)
    return _finish(run("buildkit", args) if code is None else code, argv)


if __name__ == "__main__":
    sys.exit(build_main())

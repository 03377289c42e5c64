"""Entry points: ``kubectl-build`` and ``kubectl-buildkit`` (and ``python -m kubectl_build``).

This is the one place that turns exceptions into exit codes: a KubectlBuildError or a
click usage error becomes a single ``error: ...`` line on stderr and its exit code,
Ctrl-C becomes 130, and a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import click

    from kubectl_build.console import Console

# Only what a build handed to the local agent needs is imported at start: such a
# process does nothing else, so every module here is time on every warm build.

# `kubectl build --help` as click renders it (fixed 80 columns, see cli.CONTEXT_SETTINGS).
# Answering a bare --help from this copy skips importing click, which alone costs
# several times a bare interpreter start. tests/unit/test_cli.py fails when it drifts;
# regenerate with: python -c "from kubectl_build.cli.commands import render_build_help as r; print(r())"
BUILD_HELP = """Usage: kubectl build [OPTIONS] PATH | URL | -

  Build a container image from PATH, URL or - (stdin) with BuildKit.

  By default the build runs on a BuildKit builder in the current Kubernetes
  cluster; --buildkit-host builds on a standing buildkitd instead.

Options:
  -f, --file PATH                 Dockerfile (default: PATH/Dockerfile; - reads
                                  stdin).
  -t, --tag NAME[:TAG]            Image name and tag; repeatable.
  --platform OS/ARCH[/VARIANT]    Target platforms, comma list or repeated;
                                  'local' is this machine [env
                                  DOCKER_DEFAULT_PLATFORM].
  --build-arg KEY[=VALUE]         Build-time variable; a bare KEY takes the
                                  environment's value.
  --label KEY=VALUE               Image label; repeatable.
  --target STAGE                  Build this stage instead of the last one.
  --no-cache                      Do not use the build cache.
  --no-cache-filter STAGE         Do not use the build cache for these stages.
  --pull                          Always check for newer base images.
  --secret id=ID[,src=FILE|env=VAR]
                                  Secret for RUN --mount=type=secret.
  --ssh default|ID[=SOCKET|KEY,...]
                                  SSH agent or keys for RUN --mount=type=ssh.
  --cache-from REF|type=...       Cache source, e.g. type=registry,ref=REF.
  --cache-to type=...             Cache destination, e.g.
                                  type=registry,ref=REF,mode=max or type=inline.
  -o, --output type=...|DIR       Output: type=local|tar|oci|docker,dest=PATH (-
                                  is stdout), type=image,name=NAME[,push=true],
                                  type=registry, or a directory.
  --push                          Push the image to its registry (shorthand for
                                  --output type=registry).
  --load                          Make the image available to the cluster's
                                  nodes.
  --network default|host|none     Network mode for RUN steps.
  --add-host HOST:IP              Add an /etc/hosts entry for RUN steps.
  --allow ENTITLEMENT             Allow network.host or security.insecure.
  --progress auto|tty|plain|quiet|rawjson
                                  Progress output [env BUILDKIT_PROGRESS;
                                  default auto].
  -q, --quiet                     No progress; print only the image digest.
  --iidfile FILE                  Write the image digest to FILE.
  --metadata-file FILE            Write build result metadata to FILE as JSON.
  --debug                         Show debug output and tracebacks.
  --buildkit-host ADDR            Use the buildkitd at unix://PATH or
                                  tcp://HOST:PORT instead of the cluster [env
                                  BUILDKIT_HOST].
  --tlscacert FILE                CA certificate for a tcp:// buildkitd.
  --tlscert FILE                  Client certificate for a tcp:// buildkitd.
  --tlskey FILE                   Client key for a tcp:// buildkitd.
  --tlsservername NAME            Server name to verify for a tcp:// buildkitd.
  --builder NAME                  Builder name [env BUILDKIT_BUILDER; default
                                  buildkit].
  --registry-secret NAME          Kubernetes Secret with registry credentials
                                  (default: the builder's name).
  -n, --namespace NAME            Kubernetes namespace of the builder.
  --mode [auto|native|cross|qemu]
                                  How foreign platforms are built: native nodes,
                                  cross-compilation or QEMU [env
                                  KUBECTL_BUILD_MODE; default auto: the fastest
                                  that works].
  --qemu-image IMAGE              Image that installs QEMU emulators on a node
                                  when a platform needs them [default
                                  docker.io/tonistiigi/binfmt:latest].
  --transport [kubectl|websocket]
                                  Exec bridge to the builder pod [env
                                  KUBECTL_BUILD_TRANSPORT; default kubectl].
  --kubeconfig FILE               Kubeconfig file.
  --context NAME                  Kubeconfig context.
  --version                       Show the version and exit.
  -h, --help                      Show this message and exit."""


def _debug_requested(argv: Sequence[str]) -> bool:
    options = argv[: list(argv).index("--")] if "--" in argv else argv
    return "--debug" in options


def _usage_line(err: click.UsageError, prog: str) -> str:
    message = " ".join(err.format_message().split()).rstrip(".")
    # click's spelling suggestion reads better as part of the hint.
    message, _, suggestion = message.partition(". Did you mean ")
    hint = f"did you mean {suggestion} " if suggestion else ""
    return f"{message}; {hint}see '{prog} --help'"


def _dispatch(command_name: str, argv: Sequence[str], console: Console) -> int:
    """Run a click command; click's own errors become one line here."""
    import click

    from kubectl_build.cli import commands as cli
    from kubectl_build.errors import ExitCode

    command = cli.build if command_name == "build" else cli.buildkit
    prog = cli.BUILD_PROG if command_name == "build" else cli.BUILDKIT_PROG
    try:
        result = command.main(list(argv), prog_name=prog, standalone_mode=False)
    except click.UsageError as err:
        console.error(_usage_line(err, prog))
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


def _guarded(body: Callable[[], int], console: Console) -> int:
    """Run ``body``, turning every exception into one stderr line and an exit code."""
    import traceback

    from kubectl_build.errors import ExitCode, KubectlBuildError

    try:
        return body()
    except KubectlBuildError as err:
        console.trace(traceback.format_exc().rstrip())
        console.error(err.one_line())
        return err.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`kubectl build --help | head`): stop quietly.
        _silence_stdout()
        return ExitCode.FAILURE
    except Exception as err:  # noqa: BLE001 - last resort: one line, not a traceback
        console.trace(traceback.format_exc().rstrip())
        console.error(f"internal error: {type(err).__name__}: {err}; rerun with --debug and report it")
        return ExitCode.FAILURE


def run(command_name: str, argv: Sequence[str]) -> int:
    """Run one of the click commands and map every outcome to an exit code.

    Args:
        command_name: ``build`` or ``buildkit``.
        argv: the arguments after the program name.

    Returns:
        The process exit code.
    """
    from kubectl_build.console import Console

    console = Console(debug=_debug_requested(argv))
    return _guarded(lambda: _dispatch(command_name, argv, console), console)


def _show(text: str) -> int:
    from kubectl_build.console import Console

    console = Console()

    def show() -> int:
        console.result(text)
        return 0

    return _guarded(show, console)


def _completion(program: str, args: Sequence[str]) -> int | None:
    """Completion requests and ``completion SHELL``; None when args are something else."""
    wants_script = program == "kubectl-build" and len(args) == 2 and args[0] == "completion"
    if not wants_script and not os.environ.get(f"_{program.replace('-', '_').upper()}_COMPLETE"):
        return None
    from kubectl_build.cli import completion
    from kubectl_build.console import Console

    if wants_script:
        # Never a valid build (one PATH only), so it cannot shadow a context directory.
        return _guarded(lambda: _show(completion.script(args[1])), Console())
    return completion.shell_request(program)


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
            status = status or 120
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
    from kubectl_build.agent import client as agent

    args = sys.argv[1:]
    code = agent.delegate(args)
    if code is None:
        code = _build(args)
        if code == 0:
            agent.start(args)
    exit_now(code)


def build_in_process(args: list[str]) -> int:
    """A ``kubectl build`` run in this process, never delegated (the agent's copies)."""
    return _build(args)


def _build(args: list[str]) -> int:
    code = _completion("kubectl-build", args)
    if code is not None:
        return code
    if args in (["--help"], ["-h"]) and BUILD_HELP:
        return _show(BUILD_HELP)
    if "--version" in (args[: args.index("--")] if "--" in args else args):
        return _version(args)
    return run("build", args)


def buildkit_main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kubectl-buildkit`` console script (``kubectl buildkit``).

    Like ``build_main``, it ends the process itself when called without ``argv``.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    code = _completion("kubectl-buildkit", args)
    return _finish(run("buildkit", args) if code is None else code, argv)


if __name__ == "__main__":
    sys.exit(build_main())

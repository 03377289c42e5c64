"""click's usage errors as the one line the CLI prints."""

from __future__ import annotations

import click


def usage_line(err: click.UsageError, prog: str) -> str:
    """Click's usage error as one line: what was wrong, a suggestion, where help is."""
    if isinstance(err, click.NoSuchOption):
        return _no_such_option(err, prog)
    message = " ".join(err.format_message().split()).rstrip(".")
    # click's spelling suggestion reads better as part of the hint.
    message, _, suggestion = message.partition(". Did you mean ")
    hint = f"did you mean {suggestion} " if suggestion else ""
    return f"{message}; {hint}see '{prog} --help'"


def _no_such_option(err: click.NoSuchOption, prog: str) -> str:
    """An unknown option, with suggestions among the options --help shows only.

    The hidden compatibility flags (``--rm``, ``--compress``...) are accepted but never
    offered: ``--sbom`` must not suggest ``--rm``.
    """
    command = err.ctx.command if err.ctx is not None else None
    hidden = {name for param in (command.params if command else ()) if getattr(param, "hidden", False)
              for name in param.opts}
    shown = sorted(p for p in (err.possibilities or ()) if p not in hidden)
    if len(shown) == 1:
        hint = f"did you mean '{shown[0]}'? "
    elif shown:
        hint = f"did you mean one of {', '.join(repr(p) for p in shown)}? "
    else:
        hint = ""
    return f"No such option '{err.option_name}'; {hint}see '{prog} --help'"

#!/usr/bin/env python3
"""Regenerate kubectl_build/cli/build_help.py from the click command's own help.

python scripts/gen_build_help.py
"""

from __future__ import annotations

from pathlib import Path

from kubectl_build.cli.commands import render_build_help

TARGET = Path(__file__).resolve().parent.parent / "kubectl_build" / "cli" / "build_help.py"


def main() -> None:
    """Rewrite the text between the BUILD_HELP quotes."""
    text = TARGET.read_text()
    start = text.index('BUILD_HELP = """') + len('BUILD_HELP = """')
    end = text.index('"""', start)
    TARGET.write_text(text[:start] + render_build_help() + text[end:])


if __name__ == "__main__":
    main()

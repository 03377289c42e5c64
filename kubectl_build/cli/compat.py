"""Flags accepted for compatibility and never shown: old docker build command lines keep working."""

from __future__ import annotations

import click

# docker build flags of the legacy builder that BuildKit has no use for. They are
# accepted and ignored (hidden from --help), as BuildKit clients do, so existing
# `docker build` command lines keep working.
_IGNORED_FLAGS = ("--rm", "--force-rm", "--compress")
_IGNORED_VALUE_OPTIONS = (
    ("--isolation",),
    ("--security-opt",),
    ("-m", "--memory"),
    ("--memory-swap",),
    ("-c", "--cpu-shares"),
    ("--cpu-period",),
    ("--cpu-quota",),
    ("--cpuset-cpus",),
    ("--cpuset-mems",),
)
COMPAT_OPTIONS = [
    *(click.option(flag, is_flag=True, hidden=True, expose_value=False) for flag in _IGNORED_FLAGS),
    *(
        click.option(*names, multiple=True, hidden=True, expose_value=False)
        for names in _IGNORED_VALUE_OPTIONS
    ),
]

# Switches buildx (cobra) also takes as --push=true / --push=false, as CI files write them.
BOOL_SWITCHES = ("--push", "--load", "--pull", "--no-cache", "--quiet", "-q", "--check", "--debug")
_TRUE, _FALSE = ("1", "t", "true"), ("0", "f", "false")


def spell_switches(argv: list[str]) -> list[str]:
    """``--push=true`` as ``--push``, ``--push=false`` left out; other values stay for click's error.

    ``-t=NAME`` as ``-t NAME``: cobra reads a short option's ``=`` as the separator, click
    as part of the value. Nothing after ``--`` is ours.
    """
    spelled: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return spelled + argv[index:]
        name, eq, value = arg.partition("=")
        if eq and name in BOOL_SWITCHES and value.lower() in (*_TRUE, *_FALSE):
            if value.lower() in _TRUE:
                spelled.append(name)
            continue
        if eq and len(name) == 2 and name[0] == "-" and name[1].isalpha():
            spelled += [name, value]
            continue
        spelled.append(arg)
    return spelled

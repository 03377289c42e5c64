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

"""The build context: .dockerignore parsing, pattern matching and the filtered walk.

Everything here reproduces what BuildKit's Go client (fsutil, moby/patternmatcher,
ignorefile) does, so the daemon receives the same listing from us as from buildctl.
"""

from __future__ import annotations

from kubectl_build.context.dockerignore import read_ignore_file
from kubectl_build.context.patterns import PatternMatcher
from kubectl_build.context.walk import FileStat, WalkFilter, walk

__all__ = ["FileStat", "PatternMatcher", "WalkFilter", "read_ignore_file", "walk"]

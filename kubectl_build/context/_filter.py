"""fsutil's include/exclude/followpaths decisions for one walk (filter.go, followlinks.go).

The walker asks `ContextFilter.decide` about every entry it reaches; the
answer reproduces Go's matcher *and* its pruning shortcuts, because the
shortcuts are observable (see the "foo/*/**" quirk in `_trim_glob`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import NamedTuple

from kubectl_build.context._gosyntax import (
    PatternSyntaxError,
    UnsupportedPatternError,
    go_match,
)
from kubectl_build.context.patterns import MatchInfo, PatternMatcher, go_clean
from kubectl_build.errors import ContextError

_PATTERN_CHARS = "*[]?^\\"
_NOT_FOUND = (FileNotFoundError, NotADirectoryError)


class Verdict(NamedTuple):
    """The filter's answer for an entry that is not pruned."""

    skip: bool  # walked (if a dir) but not sent unless a descendant is
    include_info: MatchInfo
    exclude_info: MatchInfo


AncestorHits = tuple[tuple[bool, ...], tuple[bool, ...]]
"""Per pattern (include, exclude): does it match this directory or an ancestor."""


def fs_bytes(path: str) -> bytes:
    """Encode a str path back to the raw bytes it was decoded from."""
    return path.encode("utf-8", "surrogateescape")


def fs_str(path: bytes) -> str:
    """Decode raw path bytes; invalid UTF-8 survives as surrogate escapes."""
    return path.decode("utf-8", "surrogateescape")


def _go_sort_key(text: str) -> bytes:
    return fs_bytes(text)


def _go_join(*parts: str) -> str:
    """Go's filepath.Join: empty elements ignored, result cleaned."""
    kept = [p for p in parts if p]
    return go_clean("/".join(kept)) if kept else ""


def dedupe_paths(paths: Sequence[str]) -> list[str] | None:
    """Drop a path under the last kept one, as fsutil's dedupePaths; "." means no filter.

    It assumes sorted input but is also applied to unsorted include patterns,
    where the quirks (e.g. a pattern starting with "/" is always dropped) are kept.
    """
    out: list[str] = []
    last = ""
    for path in paths:
        if path == ".":
            return None
        if path.startswith(last + "/"):
            continue
        out.append(path)
        last = path
    return out


def _contains_wildcards(name: str) -> bool:
    i = 0
    while i < len(name):
        if name[i] == "\\":
            i += 1
        elif name[i] in "*?[":
            return True
        i += 1
    return False


class _SymlinkResolver:
    """fsutil FollowLinks: turn followpaths into include patterns through symlinks."""

    def __init__(self, root: bytes) -> None:
        self.root = root
        self.resolved: set[str] = set()

    def append(self, path: str) -> None:
        rest = _go_join(".", path) or "."
        current = "."
        while True:
            head, _, rest = rest.partition("/")
            current = _go_join(current, head)
            targets = self._read_symlink(current, allow_wildcard=True)
            if (not rest or targets is not None) and current in self.resolved:
                return
            if targets is not None:
                self.resolved.add(current)
                for target in targets:
                    self.append(_go_join(target, rest))
                return
            if not rest:
                self.resolved.add(current)
                return

    def _read_symlink(self, path: str, allow_wildcard: bool) -> list[str] | None:
        if path == ".." or path.startswith("../"):
            return None  # never look outside the context
        parent, _, base = path.rpartition("/")
        parent = parent or "."
        if allow_wildcard and _contains_wildcards(base):
            return self._expand(parent, base)
        real = os.path.join(self.root, fs_bytes(path))
        try:
            if not stat.S_ISLNK(os.lstat(real).st_mode):
                return None
            link = go_clean(fs_str(os.readlink(real)))
        except _NOT_FOUND:
            return None
        except OSError as err:
            raise ContextError(f"cannot resolve followpath {path!r}: {err.strerror}") from err
        if link.startswith("/"):
            return [link]
        return [go_clean(f"/{parent}/{link}")]

    def _expand(self, parent: str, base: str) -> list[str] | None:
        try:
            names = sorted(os.listdir(os.path.join(self.root, fs_bytes(parent))))
        except _NOT_FOUND:
            return None
        except OSError as err:
            raise ContextError(f"readdir {parent!r}: {err.strerror}") from err
        out: list[str] | None = None
        for raw in names:
            name = fs_str(raw)
            try:
                hit = go_match(base, name)
            except PatternSyntaxError:
                hit = False
            if hit:
                found = self._read_symlink(_go_join(parent, name), allow_wildcard=False)
                if found is not None:
                    out = (out or []) + found
        return out


def follow_links(root: bytes, paths: Sequence[str]) -> list[str] | None:
    """Resolve followpaths into include patterns (None: no filtering at all).

    Args:
        root: The context directory, symlinks already resolved.
        paths: The followpaths as the daemon sent them.
    """
    resolver = _SymlinkResolver(root)
    for path in paths:
        resolver.append(path)
    return dedupe_paths(sorted(resolver.resolved, key=_go_sort_key))


def _trim_glob(pattern: str) -> str:
    # Go trims "/**" and then "/*", so "foo/*/**" collapses to "foo": kept on purpose.
    pattern = pattern.removesuffix("/**")
    return pattern.removesuffix("/*")


def _matcher(kind: str, patterns: Sequence[str]) -> PatternMatcher:
    try:
        return PatternMatcher(patterns)
    except PatternSyntaxError as err:
        raise ContextError(
            f"invalid {kind}patterns: {list(patterns)}: {err}",
            "fix the pattern (in .dockerignore for excludes)",
        ) from err


def _prefixes(matcher: PatternMatcher, exclusion: bool) -> tuple[list[str], bool]:
    """Trimmed patterns + "/" of one polarity, and whether all are plain prefixes."""
    chosen = [_trim_glob(p.text) for p in matcher.patterns if p.exclusion == exclusion]
    only_prefix = not any(c in _PATTERN_CHARS for text in chosen for c in text)
    return [text + "/" for text in chosen], only_prefix


class ContextFilter:
    """The include/exclude/followpaths filter of one transfer, built once per walk."""

    def __init__(
        self,
        root: bytes,
        include: Sequence[str],
        exclude: Sequence[str],
        follow: Sequence[str],
    ) -> None:
        """Compile the patterns and resolve followpaths against `root`.

        Raises:
            ContextError: A pattern list is invalid or a followpath cannot be read.
        """
        includes: list[str] | None = list(include)
        if follow:
            targets = follow_links(root, follow)
            if targets is not None:
                includes = dedupe_paths([*include, *targets])
        self.include = _matcher("include", includes) if includes else None
        self.exclude = _matcher("exclude", exclude) if exclude else None
        self._inc_prefixes, self._inc_only_prefix = (
            _prefixes(self.include, False) if self.include else ([], True)
        )
        self._exc_prefixes, self._exc_only_prefix = (
            _prefixes(self.exclude, True) if self.exclude else ([], True)
        )
        self.active = self.include is not None or self.exclude is not None
        # Open() re-checks with MatchesOrParentMatches; without includes or
        # exceptions that can never disagree with the walker.
        self.checks_open = self.include is not None or bool(self.exclude and self.exclude.exclusions)

    def decide(self, path: str, is_dir: bool, parent: Verdict | None) -> Verdict | None:
        """Judge one entry; None means do not descend (fs.SkipDir).

        Raises:
            ContextError: A pattern's regex fails when first used.
        """
        skip = False
        inc_info: MatchInfo = None
        exc_info: MatchInfo = None
        if self.include is not None:
            hit, inc_info = _match(self.include, path, parent, include=True)
            if not hit:
                if is_dir and self._inc_only_prefix and not self._may_hold(path, True):
                    return None
                skip = True
        if self.exclude is not None:
            hit, exc_info = _match(self.exclude, path, parent, include=False)
            if hit:
                if is_dir and self._exc_only_prefix and not self._may_hold(path, False):
                    return None
                skip = True
        return Verdict(skip, inc_info, exc_info)

    def _may_hold(self, dir_path: str, include: bool) -> bool:
        prefix = dir_path + "/"
        patterns = self._inc_prefixes if include else self._exc_prefixes
        return any(p.startswith(prefix) for p in patterns)

    def ancestor_hits(self, dir_path: str, parent: AncestorHits | None) -> AncestorHits:
        """Which patterns match `dir_path` or one of its ancestors (for `open_allowed`)."""
        return (
            _ancestor_row(self.include, dir_path, parent[0] if parent else None),
            _ancestor_row(self.exclude, dir_path, parent[1] if parent else None),
        )

    def open_allowed(self, path: str, hits: AncestorHits) -> bool:
        """Whether Go's FilterFS.Open would let the sender read this file's data."""
        try:
            if self.include is not None and not _or_parent(self.include, path, hits[0]):
                return False
            return self.exclude is None or not _or_parent(self.exclude, path, hits[1])
        except PatternSyntaxError:
            return False  # Go's Open fails, and the sender then sends no data


def _match(
    matcher: PatternMatcher, path: str, parent: Verdict | None, *, include: bool
) -> tuple[bool, MatchInfo]:
    kind = "include" if include else "exclude"
    info = None
    if parent is not None:
        info = parent.include_info if include else parent.exclude_info
    try:
        return matcher.matches_using_parent_results(path, info)
    except UnsupportedPatternError as err:
        raise ContextError(f"unsupported {kind}pattern: {err}") from err
    except PatternSyntaxError as err:
        raise ContextError(f"failed to match {kind}patterns: {err}") from err


def _ancestor_row(
    matcher: PatternMatcher | None, dir_path: str, parent: tuple[bool, ...] | None
) -> tuple[bool, ...]:
    if matcher is None:
        return ()
    row = []
    for i, pattern in enumerate(matcher.patterns):
        hit = bool(parent and parent[i])
        if not hit and dir_path:
            try:
                hit = pattern.match(dir_path)
            except PatternSyntaxError:
                hit = False  # Go ignores errors when testing parents
        row.append(hit)
    return tuple(row)


def _or_parent(matcher: PatternMatcher, path: str, hits: tuple[bool, ...]) -> bool:
    """MatchesOrParentMatches with the ancestor tests precomputed per directory."""
    matched = False
    for i, pattern in enumerate(matcher.patterns):
        if pattern.exclusion != matched:
            continue
        if pattern.match(path) or hits[i]:
            matched = not pattern.exclusion
    return matched

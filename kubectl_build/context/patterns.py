"""moby/patternmatcher (v0.6.1) semantics: the patterns BuildKit's file sender filters with.

Paths and patterns are `str`; a path that is not valid UTF-8 is decoded with
`surrogateescape`, which keeps one char per undecodable byte just as Go's
regexp sees one RuneError per invalid byte.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from kubectl_build.context._gosyntax import (
    PatternSyntaxError,
    UnsupportedPatternError,
    compile_re2,
    go_match,
)

__all__ = [
    "MatchInfo",
    "Pattern",
    "PatternMatcher",
    "PatternSyntaxError",
    "go_clean",
    "go_trim_space",
]

# Go's unicode.IsSpace; Python's str.strip() also strips \x1c-\x1f, which Go keeps.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# patternmatcher means to escape ".+()|{}$", but its bit table loses every
# char >= 64, so "|", "{" and "}" reach the regex raw (verified against Go).
_REGEX_META = ".+()$"

MatchInfo = tuple[bool, ...] | None
"""Per-pattern results of a directory, inherited by its children (None: no parent)."""


def go_trim_space(text: str) -> str:
    """Strip leading/trailing white space like Go's `strings.TrimSpace`."""
    return text.strip(_GO_SPACE)


def go_clean(path: str) -> str:
    """Lexically clean a slash path like Go's `filepath.Clean` on Unix.

    Unlike `posixpath.normpath`, a leading "//" collapses to "/" and ".." above
    the root of an absolute path is dropped.
    """
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:
            parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


class _Kind(enum.Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEX = "regex"


@dataclass
class Pattern:
    """One compiled pattern: the text after cleaning and without its leading "!".

    Compilation is lazy, as in Go: a pattern whose regex is invalid only fails
    when it is first evaluated.
    """

    text: str
    exclusion: bool
    _kind: _Kind | None = field(default=None, repr=False)
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    def match(self, path: str) -> bool:
        """Whether `path` (a cleaned "/"-separated relative path) matches.

        Raises:
            PatternSyntaxError: The pattern's regex does not compile.
        """
        kind = self._kind or self._compile()
        if kind is _Kind.EXACT:
            return path == self.text
        if kind is _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if kind is _Kind.SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        assert self._regex is not None
        # Go's MatchString searches; "^" only anchors the first alternative.
        return self._regex.search(path) is not None

    def _compile(self) -> _Kind:
        kind, source = _translate(self.text)
        if kind is _Kind.REGEX:
            try:
                self._regex = compile_re2(source)
            except UnsupportedPatternError:
                raise
            except PatternSyntaxError:
                raise PatternSyntaxError("syntax error in pattern") from None
        self._kind = kind
        return kind


def _translate(pattern: str) -> tuple[_Kind, str]:
    """Build Go's regex text for a pattern and decide how it is matched."""
    text = pattern[1:] if pattern.startswith("\ufeff") else pattern
    kind = _Kind.EXACT
    out = ["^"]
    i = 0
    while i < len(text):
        ch = text[i]
        start = i
        i += 1
        if ch == "*" and text[i : i + 1] == "*":
            i += 2 if text[i + 1 : i + 2] == "/" else 1
            if i >= len(text):
                kind = _Kind.PREFIX if kind is _Kind.EXACT else _Kind.REGEX
                out.append("" if kind is _Kind.PREFIX else ".*")
            else:
                kind = _Kind.REGEX
                out.append("(.*/)?")
            if start == 0:
                kind = _Kind.SUFFIX
        elif ch in "*?":
            kind = _Kind.REGEX
            out.append("[^/]*" if ch == "*" else "[^/]")
        elif ch in _REGEX_META:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < len(text):
                out.append("\\" + text[i])
                i += 1
                kind = _Kind.REGEX
            else:
                out.append("\\")
        else:
            if ch in "[]":
                kind = _Kind.REGEX
            out.append(ch)
    return kind, "".join(out) + "$"


def _parent_prefixes(path: str) -> list[str]:
    """The ancestors of a relative path, shortest first ("a/b/c" -> "a", "a/b")."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class PatternMatcher:
    """An ordered list of patterns where the last applicable one wins."""

    def __init__(self, patterns: Sequence[str]) -> None:
        """Parse patterns like Go's `patternmatcher.New`.

        Args:
            patterns: Raw patterns; each is trimmed and cleaned, empty ones dropped,
                and a leading "!" makes an exception.

        Raises:
            PatternSyntaxError: A bare "!" or a pattern `filepath.Match` rejects.
        """
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = go_trim_space(raw)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise PatternSyntaxError('illegal exclusion pattern: "!"')
                text = text[1:]
            go_match(text, ".")  # syntax check only, as in Go
            self.patterns.append(Pattern(text, exclusion))
        self.exclusions = any(p.exclusion for p in self.patterns)

    def matches_or_parent_matches(self, path: str) -> bool:
        """Go's `MatchesOrParentMatches`: a pattern also applies through any ancestor.

        fsutil uses this only when a file is opened for its content.
        """
        matched = False
        parents: list[str] | None = None
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit:
                if parents is None:
                    parents = _parent_prefixes(path)
                hit = any(pattern.match(parent) for parent in parents)
            if hit:
                matched = not pattern.exclusion
        return matched

    def matches_using_parent_results(self, path: str, parent: MatchInfo) -> tuple[bool, MatchInfo]:
        """Go's `MatchesUsingParentResults`, what fsutil's walker filters with.

        A pattern the parent directory matched counts as matched without being
        re-tested; a pattern skipped at the parent (by the last-match-wins rule)
        does not carry over, which is where this differs from
        `matches_or_parent_matches`.

        Args:
            path: The entry's relative path.
            parent: The parent directory's returned info, or None at the top level.

        Returns:
            Whether the path matches, and the info to hand to its children.
        """
        matched = False
        record = [False] * len(self.patterns)
        for i, pattern in enumerate(self.patterns):
            hit = parent[i] if parent else False
            if not hit:
                if pattern.exclusion != matched:
                    continue
                hit = pattern.match(path)
                if not hit and not parent and "/" in path:
                    hit = any(pattern.match(p) for p in _parent_prefixes(path))
            record[i] = hit
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(record)

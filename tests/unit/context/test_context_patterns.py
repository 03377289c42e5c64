"""Pattern semantics of moby/patternmatcher v0.6.1, as table tests."""

from __future__ import annotations

import pytest

from kubectl_build.context._filter import dedupe_paths
from kubectl_build.context._gosyntax import (
    PatternSyntaxError,
    UnsupportedPatternError,
    go_match,
)
from kubectl_build.context.patterns import PatternMatcher, go_clean, go_trim_space

# (pattern, path, matches): one pattern, the path itself only (no parents).
MATCH_TABLE: list[tuple[str, str, bool]] = [
    ("foo", "foo", True),
    ("foo", "foo/a", False),
    ("foo/**", "foo/a", True),
    ("foo/**", "foo", False),
    ("foo**", "foo", True),
    ("foo**", "foobar", True),
    ("foo**", "foo/x", True),
    ("a**b", "ab", True),
    ("a**b", "a/b", True),
    ("a**b", "ax/b", True),
    ("a**b", "axb", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "ab", False),
    ("**/foo", "foo", True),
    ("**/foo", "x/y/foo", True),
    ("**/foo", "xfoo", False),
    ("**foo", "x/yfoo", True),  # a suffix match without "/" is not segment-aware
    ("**foo", "barfoo", True),
    ("**", "anything/at/all", True),
    ("**/*.txt", "a.txt", True),
    ("**/*.txt", "d/e/a.txt", True),
    ("**/*.txt", "d/e/a.txt/x", False),
    ("*", "a", True),
    ("*", "a/b", False),
    ("*/*.md", "d/b.md", True),
    ("*/*.md", "d/e/c.md", False),
    ("?", "a", True),
    ("?", "/", False),
    ("?", "\n", True),
    ("?", "é", True),
    ("?", "\udcff", True),  # one invalid byte is one rune for Go
    ("??", "é", False),
    ("^foo", "^foo", True),
    ("^foo", "foo", False),
    ("^foo*", "foox", True),
    ("^foo*", "^foox", False),
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("\\#x", "#x", True),
    ("a.b", "a.b", True),
    ("a.b*", "axb", False),
    # patternmatcher's escape table loses "|", "{" and "}" (chars >= 64), so in
    # regex-type patterns they act as operators, and Go's MatchString searches
    # (unanchored). Expectations checked against the Go code.
    ("a|b", "a|b", True),  # no regex feature: an exact match
    ("a|b", "b", False),
    ("[a]|b", "b", True),
    ("[a]|b", "xb", True),
    ("[a]|b", "ax", True),
    ("[a]|b", "xbx", False),
    ("[x]|", "anything", True),
    ("a+(b)|c*", "a+(b)", True),
    ("a{2}", "a{2}", True),
    ("[a]{2}", "aa", True),
    ("[a]{2}", "a{2}", False),
    ("[a]{1,}", "aaa", True),
    ("{2}[x]", "x", True),  # RE2 lets a repeat apply to the "^" anchor
    ("{0}[x]", "ax", True),  # ... even zero times, which drops the anchor
    ("[a]{,2}", "a{,2}", True),  # not a repeat in RE2 (Python would say {0,2})
    ("[a]{01}", "a{01}", True),
    ("{a,b}*", "a", False),
    ("{a,b}*", "{a,b}", True),
    ("a$*", "a$", True),
    ("a[b]", "ab", True),
    ("a[b]", "ab\n", False),  # Go's $ is end of text, unlike Python's
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("x[^a]y", "x/y", True),  # negated classes can match "/"
    ("x[^a]y", "xay", False),
    ("[!a]", "!", True),  # "!" is no negation
    ("[!a]", "a", True),
    ("[!a]", "b", False),
    ("[\\]]", "]", True),
    ("[*]", "]", True),  # "*" inside brackets is mangled into [^/]*
    ("[*]", "[]", True),
    ("[*]", "*", False),
    ("[[:digit:]]", "5", True),
    ("[[:digit:]]", "a", False),
    ("[[:^digit:]]", "a", True),
    ("[[:alpha:][:digit:]]x", "3x", True),
    ("\\d", "1", True),  # backslash escapes leak RE2 classes through
    ("\\d", "d", False),
    ("\\d", "\u0663", False),  # ASCII only, like RE2
    ("\\D", "d", True),
    ("\\w", "_", True),
    ("\\w", "é", False),
    ("\\s", " ", True),
    ("\\s", "\v", False),  # RE2's \s has no \v
    ("[\\s]", "\t", True),
    ("[\\S]", " ", False),
    ("x\\b", "x", True),
    ("\\x41", "A", True),
    ("a\\12", "a\n", True),  # octal escape
    # A .dockerignore in Latin-1 reaches us with U+FFFD (the frontend's JSON);
    # Go's regexp reads each invalid byte of a path as U+FFFD too.
    ("caf\ufffd*", "caf\udce9.txt", True),
    ("caf\ufffd.txt", "caf\udce9.txt", False),  # exact match compares bytes
    ("[\ufffd]", "\udcff", True),
    ("[^\ufffd]", "\udcff", False),
    ("[a-\ue000]", "\udcff", False),
    ("\\W", "\udcff", True),
    ("\ufeff*.go", "a.go", True),  # text/scanner drops a leading BOM
    ("\ufeffa", "a", False),  # but exact patterns keep it
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MATCH_TABLE)
def test_pattern_match(pattern: str, path: str, expected: bool) -> None:
    (compiled,) = PatternMatcher([pattern]).patterns
    assert compiled.match(path) is expected


@pytest.mark.parametrize(
    "pattern", ["[", "a[", "[]a]", "[-x]", "[x-]", "[a-b-c]", "a\\", "!", " ! ", "!["]
)
def test_invalid_at_construction(pattern: str) -> None:
    with pytest.raises(PatternSyntaxError):
        PatternMatcher([pattern])


@pytest.mark.parametrize(
    "pattern",
    ["[Local-Only]", "\\e", "\\1", "\\C", "\\Z", "x\\é", "[a]|{2}", "[a]{1001}", "[a]{3,2}", "*{2}", "x*["],
)
def test_invalid_regex_fails_lazily(pattern: str) -> None:
    (compiled,) = PatternMatcher([pattern]).patterns
    with pytest.raises(PatternSyntaxError):
        compiled.match("x")


@pytest.mark.parametrize("pattern", ["\\pL", "[\\p{Greek}]", "\\Qa\\E"])
def test_unsupported_rejected_when_used(pattern: str) -> None:
    (compiled,) = PatternMatcher([pattern]).patterns
    with pytest.raises(UnsupportedPatternError):
        compiled.match("x")


def test_construction_trims_cleans_and_drops_empty() -> None:
    matcher = PatternMatcher(["  a/  ", "", " \t", "b/./c", "!d/../e", "!./x"])
    assert [(p.text, p.exclusion) for p in matcher.patterns] == [
        ("a", False),
        ("b/c", False),
        ("e", False),  # Clean runs first: "!d/.." cancels out, "!" included
        ("./x", True),  # cleaned before the "!" is seen, so it matches nothing
    ]
    assert matcher.exclusions


def _walker_result(matcher: PatternMatcher, path: str) -> bool:
    """Chain matches_using_parent_results from the top like the walker does."""
    parts = path.split("/")
    info = None
    matched = False
    for i in range(len(parts)):
        matched, info = matcher.matches_using_parent_results("/".join(parts[: i + 1]), info)
    return matched


# (patterns, path, walker result, MatchesOrParentMatches result)
DIVERGENCES: list[tuple[list[str], str, bool, bool]] = [
    (["d/x", "!d"], "d/x", True, False),
    (["**/*.txt", "!d"], "d/x.txt", True, False),
    (["foo/bar", "!foo"], "foo/bar/x", True, False),
    (["foo", "!foo/a", "foo"], "foo/a", False, True),
    (["docs", "!docs/README.md"], "docs/README.md", False, False),
    (["docs", "!docs/README.md"], "docs/x.md", True, True),
    (["*", "!**/*.go"], "a/b/c.go", False, False),
    (["a"], "a/b/c", True, True),
]


@pytest.mark.parametrize(("patterns", "path", "walker", "or_parent"), DIVERGENCES)
def test_parent_results_versus_or_parent(
    patterns: list[str], path: str, walker: bool, or_parent: bool
) -> None:
    matcher = PatternMatcher(patterns)
    assert _walker_result(matcher, path) is walker
    assert matcher.matches_or_parent_matches(path) is or_parent


def test_top_level_call_checks_ancestors() -> None:
    matcher = PatternMatcher(["a"])
    assert matcher.matches_using_parent_results("a/b", None) == (True, (True,))


GO_MATCH: list[tuple[str, str, bool]] = [
    ("*", "abc", True),
    ("*", "a/b", False),
    ("a*/b", "abc/b", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abe", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a/b", False),
    ("[\\-]", "-", True),
    ("*.go", "main.go", True),
    ("l*", "l1", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), GO_MATCH)
def test_go_match(pattern: str, name: str, expected: bool) -> None:
    assert go_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[", "a[", "[^", "[a-", "a\\", "[]", "[x-]", "*x["])
def test_go_match_bad_pattern(pattern: str) -> None:
    with pytest.raises(PatternSyntaxError):
        go_match(pattern, "x")


@pytest.mark.parametrize("pattern", ["x*[", "a/**[", "?a*["])
def test_go_match_does_not_check_chunks_it_never_reached(pattern: str) -> None:
    # filepath.Match (unlike path.Match) stops at the first failing chunk, so
    # these pass patternmatcher's syntax check and fail later, if ever.
    assert go_match(pattern, ".") is False
    PatternMatcher([pattern])


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."),
        ("a/b/../c", "a/c"),
        ("//a//b/", "/a/b"),
        ("/../x", "/x"),
        ("../../x", "../../x"),
        ("a/../..", ".."),
        ("./", "."),
        ("!./x", "!./x"),
    ],
)
def test_go_clean(path: str, cleaned: str) -> None:
    assert go_clean(path) == cleaned


def test_go_trim_space_is_not_str_strip() -> None:
    assert go_trim_space("\u2000\u3000a\x85") == "a"
    assert go_trim_space("\x1fa\x1c") == "\x1fa\x1c"


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["a", "a/b", "b"], ["a", "b"]),
        (["src/*", "src/*/file"], ["src/*"]),
        (["bar", "."], None),
        (["/abs", "x"], ["x"]),  # Go's quirk: last starts as "", so "/..." is dropped
        (["b", "a", "a/x"], ["b", "a"]),
    ],
)
def test_dedupe_paths(paths: list[str], expected: list[str] | None) -> None:
    assert dedupe_paths(paths) == expected

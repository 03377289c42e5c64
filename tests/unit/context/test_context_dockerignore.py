"""read_ignore_file: the behaviour of Go's ignorefile.ReadAll, case by case."""

from __future__ import annotations

import pytest

from kubectl_build.context.dockerignore import MAX_LINE_BYTES, read_ignore_file
from kubectl_build.errors import ContextError, ExitCode

CASES: list[tuple[str, bytes, list[str]]] = [
    ("empty", b"", []),
    ("blank-lines", b"\n\n  \n\t\n", []),
    ("plain", b"a\nb/c\n", ["a", "b/c"]),
    ("no-final-newline", b"a\nb", ["a", "b"]),
    ("crlf", b"a\r\nb\r\n", ["a", "b"]),
    ("only-one-cr-dropped", b"a\r\r\n", ["a"]),  # the second CR is then trimmed as space
    ("lone-cr-is-not-a-break", b"a\rb\n", ["a\rb"]),
    ("bom-first-line", b"\xef\xbb\xbfa\nb\n", ["a", "b"]),
    ("bom-stripped-once", b"\xef\xbb\xbf\xef\xbb\xbfa\n", ["\ufeffa"]),
    ("bom-later-line-kept", b"a\n\xef\xbb\xbfb\n", ["a", "\ufeffb"]),
    ("bom-then-comment", b"\xef\xbb\xbf# c\nx\n", ["x"]),
    ("comment", b"# comment\na\n", ["a"]),
    ("indented-hash-is-a-pattern", b"  # x\n", ["# x"]),
    ("escaped-hash", b"\\#x\n", ["\\#x"]),
    ("trim", b"  a  \n\tb\t\n", ["a", "b"]),
    ("unicode-space-trimmed", "\u3000a\u00a0\u2003\n".encode(), ["a"]),
    ("go-keeps-file-separator", b"\x1ca\n", ["\x1ca"]),
    ("exception", b"!a\n", ["!a"]),
    ("exception-space", b"! /a\n", ["!a"]),
    ("double-bang", b"!!x\n", ["!!x"]),
    ("leading-slash", b"/foo\n", ["foo"]),
    ("dot-slash", b"./y\n", ["y"]),
    ("dotdot-inside", b"z/../w\n", ["w"]),
    ("slashes", b"//dd//ee//\n", ["dd/ee"]),
    ("trailing-slash", b"foo/\n", ["foo"]),
    ("doublestar-slash", b"**/\n", ["**"]),
    ("slash-dotdot", b"/..\n", ["/"]),
    ("slash", b"/\n", ["/"]),
    ("dotdot", b"..\n../x\n", ["..", "../x"]),
    ("dot", b".\n", ["."]),
    ("exception-cleaned", b"!/a/b/\n", ["!a/b"]),
    ("no-dedupe", b"a\na\n", ["a", "a"]),
    ("trailing-backslash-space", b"a\\ \n", ["a\\"]),
    ("invalid-utf8-per-byte", b"a\xe2\x82b\n", ["a\ufffd\ufffdb"]),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_read_ignore_file(data: bytes, expected: list[str]) -> None:
    assert read_ignore_file(data) == expected


def test_longest_line_accepted() -> None:
    line = b"a" * MAX_LINE_BYTES
    assert read_ignore_file(line + b"\n") == [line.decode()]
    assert read_ignore_file(line) == [line.decode()]


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r\n"])
def test_token_too_long(tail: bytes) -> None:
    with pytest.raises(ContextError, match="token too long") as info:
        read_ignore_file(b"ok\n" + b"a" * (MAX_LINE_BYTES + 1) + tail)
    assert info.value.exit_code == ExitCode.CONTEXT
    assert "line 2" in info.value.message


def test_carriage_return_counts_towards_the_limit() -> None:
    with pytest.raises(ContextError):
        read_ignore_file(b"a" * MAX_LINE_BYTES + b"\r\n")


@pytest.mark.parametrize("data", [b"!\n", b"a\n! \n", b"!\t\n"])
def test_bare_exclamation_mark(data: bytes) -> None:
    with pytest.raises(ContextError, match="illegal exclusion pattern"):
        read_ignore_file(data)

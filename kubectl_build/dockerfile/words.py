r"""Dockerfile words: splitting instruction arguments, quote removal, ``$VAR`` expansion. Pure.

Follows the Dockerfile frontend's rules for the instructions we analyse (FROM, ARG, ENV,
COPY/RUN flags): single quotes are literal, double quotes allow expansion, the escape
character (``\`` or the ``# escape=`` one) protects the next character.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase

from kubectl_build.errors import ContextError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(.*)", re.S)
# Longest operators first so "##" is not read as "#".
_OPERATORS = (":-", ":+", ":?", "##", "%%", "//", "-", "+", "?", "#", "%", "/")


class DockerfileError(ContextError):
    """The Dockerfile cannot be parsed or analysed."""


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes for a later :func:`expand`."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and quote != "'" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch in "'\"" and quote in ("", ch):
            quote = "" if quote else ch
        elif ch.isspace() and not quote:
            if current:
                words.append("".join(current))
                current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if current:
        words.append("".join(current))
    return words


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Remove quotes and escapes and substitute ``$VAR``/``${VAR...}`` from ``env``.

    Unset variables expand to the empty string, as in the Dockerfile frontend.

    Raises:
        DockerfileError: an unterminated quote or ``${``, a bad substitution, or ``${X:?msg}``
            with ``X`` unset.
    """
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(word):
        ch = word[i]
        if ch == escape and quote != "'" and i + 1 < len(word):
            nxt = word[i + 1]
            # Inside double quotes only these characters can be escaped; others stay as typed.
            if quote == '"' and nxt not in ('"', "$", escape):
                out.append(ch)
            out.append(nxt)
            i += 2
        elif ch in "'\"" and quote in ("", ch):
            quote = "" if quote else ch
            i += 1
        elif ch == "$" and quote != "'":
            value, i = _dollar(word, i + 1, env, escape)
            out.append(value)
        else:
            out.append(ch)
            i += 1
    if quote:
        raise DockerfileError(f"unterminated quote in {word!r}")
    return "".join(out)


def _dollar(word: str, start: int, env: Mapping[str, str], escape: str) -> tuple[str, int]:
    """Expand the substitution after a ``$`` at ``start``; returns the value and next index."""
    if word.startswith("{", start):
        end = _closing_brace(word, start)
        return _braced(word[start + 1 : end], env, escape), end + 1
    name = _NAME.match(word, start)
    if name:
        return env.get(name.group(), ""), name.end()
    return "$", start


def _closing_brace(word: str, start: int) -> int:
    depth = 0
    for i in range(start, len(word)):
        if word[i] == "{" and word[i - 1] == "$" or i == start:
            depth += 1
        elif word[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise DockerfileError(f"missing '}}' in {word!r}")


def _braced(body: str, env: Mapping[str, str], escape: str) -> str:
    match = _BRACE.fullmatch(body)
    if not match:
        raise DockerfileError(f"bad substitution ${{{body}}}")
    name, rest = match.groups()
    value = env.get(name)
    if not rest:
        return value or ""
    for op in _OPERATORS:
        if rest.startswith(op):
            return _apply(op, name, value, expand(rest[len(op) :], env, escape))
    raise DockerfileError(f"bad substitution ${{{body}}}")


def _apply(op: str, name: str, value: str | None, word: str) -> str:
    """One ``${name<op>word}`` form; ``value`` is None when the variable is unset."""
    empty = not value
    if op in (":-", "-"):
        return word if (value is None or (op == ":-" and empty)) else (value or "")
    if op in (":+", "+"):
        return "" if (value is None or (op == ":+" and empty)) else word
    if op in (":?", "?"):
        if value is None or (op == ":?" and empty):
            raise DockerfileError(f"{name}: {word or 'parameter not set'}")
        return value or ""
    text = value or ""
    if op in ("#", "##"):
        return _strip_prefix(text, word, longest=op == "##")
    if op in ("%", "%%"):
        return _strip_suffix(text, word, longest=op == "%%")
    pattern, _, replacement = word.partition("/")
    # Patterns are taken literally here: the frontend's glob matching is not needed for
    # the FROM/--platform/--from values we analyse.
    return text.replace(pattern, replacement, -1 if op == "//" else 1) if pattern else text


def _strip_prefix(text: str, pattern: str, *, longest: bool) -> str:
    ends = range(len(text), -1, -1) if longest else range(len(text) + 1)
    for end in ends:
        if fnmatchcase(text[:end], pattern):
            return text[end:]
    return text


def _strip_suffix(text: str, pattern: str, *, longest: bool) -> str:
    starts = range(len(text) + 1) if longest else range(len(text), -1, -1)
    for start in starts:
        if fnmatchcase(text[start:], pattern):
            return text[:start]
    return text

"""Go's `path/filepath.Match` and the RE2 regex dialect, re-expressed for Python.

moby/patternmatcher validates patterns with `filepath.Match` and matches them
with Go regexes; fsutil expands followpaths wildcards with `filepath.Match`.
Python's `fnmatch`/`re` differ in many corners (escapes, classes, `$`), so the
two dialects are re-implemented here (and checked against the Go code).
"""

from __future__ import annotations

import re

MAX_RUNE = 0x10FFFF
_RUNE_ERROR = 0xFFFD
_SURROGATE_LO, _SURROGATE_HI = 0xDC80, 0xDCFF  # bytes 0x80..0xFF under surrogateescape

Ranges = list[tuple[int, int]]


class PatternSyntaxError(ValueError):
    """A pattern Go rejects (`filepath.ErrBadPattern` or a regexp compile error)."""


class UnsupportedPatternError(PatternSyntaxError):
    """A pattern Go accepts but that uses an RE2 feature we cannot express in Python."""


# --------------------------------------------------------------------------
# filepath.Match (Unix flavour: "\" escapes, "/" separates)
# --------------------------------------------------------------------------


def go_match(pattern: str, name: str) -> bool:
    r"""Match `name` against a shell pattern exactly like Go's `filepath.Match`.

    Args:
        pattern: The pattern (`*`, `?`, `[...]`, `\` escapes).
        name: The name to test.

    Returns:
        Whether the whole name matches.

    Raises:
        PatternSyntaxError: The pattern is malformed (Go's ErrBadPattern).
    """
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            # A trailing star matches the rest unless it would cross a "/".
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        advanced = _star_advance(chunk, name, bool(pattern)) if star else None
        if advanced is not None:
            name = advanced
            continue
        # Unlike path.Match, filepath.Match does not validate the chunks it
        # never reached, so "a/**[" passes the syntax check (verified in Go).
        return False
    return not name


def _star_advance(chunk: str, name: str, more: bool) -> str | None:
    i = 0
    while i < len(name) and name[i] != "/":
        rest, ok = _match_chunk(chunk, name[i + 1 :])
        if ok and (more or not rest):
            return rest
        i += 1
    return None


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _rune(ch: str) -> int:
    """The rune Go decodes for one char (surrogate-escaped bytes are RuneError)."""
    code = ord(ch)
    return _RUNE_ERROR if _SURROGATE_LO <= code <= _SURROGATE_HI else code


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    # Like Go, keep walking the chunk after a failure so syntax errors surface.
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        head = chunk[0]
        if head == "[":
            r = -1
            if not failed:
                r, s = _rune(s[0]), s[1:]
            matched, chunk = _match_class(chunk[1:], r)
            failed = failed or not matched
        elif head == "?":
            if not failed:
                failed = s[0] == "/"
                s = s[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise PatternSyntaxError("syntax error in pattern")
            if not failed:
                failed = chunk[0] != s[0]
                s = s[1:]
            chunk = chunk[1:]
    return ("", False) if failed else (s, True)


def _match_class(chunk: str, r: int) -> tuple[bool, str]:
    negated = chunk.startswith("^")
    if negated:
        chunk = chunk[1:]
    matched = False
    count = 0
    while True:
        if chunk.startswith("]") and count > 0:
            return matched != negated, chunk[1:]
        lo, chunk = _get_esc(chunk)
        hi = lo
        if chunk[0] == "-":
            hi, chunk = _get_esc(chunk[1:])
        matched = matched or lo <= r <= hi
        count += 1


def _get_esc(chunk: str) -> tuple[int, str]:
    if not chunk or chunk[0] in "-]":
        raise PatternSyntaxError("syntax error in pattern")
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise PatternSyntaxError("syntax error in pattern")
    if _rune(chunk[0]) == _RUNE_ERROR and chunk[0] != "\ufffd":
        raise PatternSyntaxError("syntax error in pattern")
    rest = chunk[1:]
    if not rest:
        raise PatternSyntaxError("syntax error in pattern")
    return ord(chunk[0]), rest


# --------------------------------------------------------------------------
# RE2 -> Python `re`
# --------------------------------------------------------------------------

_DIGIT: Ranges = [(0x30, 0x39)]
_SPACE_PERL: Ranges = [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)]
_WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_PERL_CLASSES: dict[str, Ranges] = {"d": _DIGIT, "s": _SPACE_PERL, "w": _WORD}
_POSIX_CLASSES: dict[str, Ranges] = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": _DIGIT,
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": _WORD,
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
_C_ESCAPES = {"a": 0x07, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}
# Operators outside classes: our own constructs, plus "|" that leaks through.
_PASSTHROUGH = "*?().|"
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_MAX_REPEAT = 1000


def compile_re2(source: str) -> re.Pattern[str]:
    r"""Compile a Go (RE2, Perl flags) regex as patternmatcher builds it.

    Args:
        source: The regex text, anchored `^...$` by the caller.

    Returns:
        An equivalent Python pattern; use `.search()` like Go's MatchString.

    Raises:
        PatternSyntaxError: Go's regexp.Compile would fail.
        UnsupportedPatternError: Valid RE2 with no Python translation (`\p`, `\Q`).
    """
    out: list[str] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            piece, i = _outside_escape(source, i)
        elif ch == "[":
            ranges, negated, i = _parse_class(source, i + 1)
            piece = _emit_class(ranges, negated)
        elif ch == "$" and i == len(source) - 1:
            piece, i = r"(?:\Z)", i + 1
        elif ch == "^":
            piece, i = "(?:^)", i + 1  # grouped: RE2 lets "^{2}" repeat an anchor
        elif ch == "{":
            piece, i = _repeat(source, i)
        elif ch in _PASSTHROUGH:
            piece, i = ch, i + 1
        else:
            piece, i = _rune_lit(ord(ch)), i + 1
        out.append(piece)
    try:
        return re.compile("".join(out), re.ASCII)
    except re.error as err:
        raise PatternSyntaxError(f"syntax error in pattern: {err}") from err


def _repeat(src: str, i: int) -> tuple[str, int]:
    """RE2 `{n}`, `{n,}`, `{n,m}`; anything else (`{,m}`, `{01}`) is a literal "{"."""
    found = _REPEAT.match(src, i)
    if found is None or any(
        len(d) > 1 and d.startswith("0") for d in (found[1], found[3] or "")
    ):
        return _lit(ord("{")), i + 1
    low = int(found[1])
    high = low if found[2] is None else (int(found[3]) if found[3] else -1)
    if low > _MAX_REPEAT or high > _MAX_REPEAT or (high >= 0 and low > high):
        raise PatternSyntaxError("syntax error in pattern: invalid repeat count")
    upper = "" if high < 0 else str(high)
    return f"{{{low},{upper}}}", found.end()


def _rune_lit(code: int) -> str:
    """A literal outside classes; U+FFFD also matches a surrogate-escaped byte."""
    return _emit_class([(code, code)], False) if code == _RUNE_ERROR else _lit(code)


def _lit(code: int) -> str:
    ch = chr(code)
    if ch.isascii() and (ch.isalnum() or ch == "_"):
        return ch
    return f"\\U{code:08x}"


def _outside_escape(src: str, i: int) -> tuple[str, int]:
    nxt = src[i + 1] if i + 1 < len(src) else ""
    assertions = {"A": r"(?:\A)", "b": r"(?:\b)", "B": r"(?:\B)", "z": r"(?:\Z)"}
    if nxt in assertions:
        return assertions[nxt], i + 2
    if nxt in ("C", "Q"):
        if nxt == "C":
            raise PatternSyntaxError("syntax error in pattern: invalid escape \\C")
        raise UnsupportedPatternError("\\Q...\\E in a pattern is not supported")
    group = _perl_group(src, i)
    if group is not None:
        return _emit_class(group, False), i + 2
    code, i = _parse_escape(src, i)
    return _rune_lit(code), i


def _perl_group(src: str, i: int) -> Ranges | None:
    nxt = src[i + 1] if i + 1 < len(src) else ""
    if nxt in ("p", "P"):
        raise UnsupportedPatternError("Unicode classes (\\p, \\P) in patterns are not supported")
    if nxt.lower() in _PERL_CLASSES:
        ranges = _PERL_CLASSES[nxt.lower()]
        return _negate(ranges) if nxt.isupper() else ranges
    return None


def _parse_escape(src: str, i: int) -> tuple[int, int]:
    r"""Decode a single-character escape at src[i] == "\"; return (rune, next index)."""
    if i + 1 >= len(src):
        raise PatternSyntaxError("syntax error in pattern: trailing backslash")
    ch = src[i + 1]
    j = i + 2
    if ch.isascii() and not ch.isalnum():
        return ord(ch), j
    if ch in "01234567":
        octal = src[j : j + 2]
        digits = len(octal) - len(octal.lstrip("01234567"))
        if ch != "0" and digits == 0:
            raise PatternSyntaxError("syntax error in pattern: backreference")
        return int(ch + octal[:digits], 8), j + digits
    if ch == "x":
        hexa = src[j : j + 2]
        if len(hexa) == 2 and all(c in "0123456789abcdefABCDEF" for c in hexa):
            return int(hexa, 16), j + 2
    if ch in _C_ESCAPES:
        return _C_ESCAPES[ch], j
    raise PatternSyntaxError(f"syntax error in pattern: invalid escape \\{ch}")


def _parse_class(src: str, i: int) -> tuple[Ranges, bool, int]:
    """Parse an RE2 class body starting after "["; return (ranges, negated, next index)."""
    negated = src.startswith("^", i)
    if negated:
        i += 1
    ranges: Ranges = []
    first = True
    while first or not src.startswith("]", i):
        if i >= len(src):
            raise PatternSyntaxError("syntax error in pattern: missing closing ]")
        first = False
        named = _named_class(src, i)
        if named is not None:
            ranges.extend(named[0])
            i = named[1]
            continue
        perl = _perl_group(src, i) if src[i] == "\\" else None
        if perl is not None:
            ranges.extend(perl)
            i += 2
            continue
        lo, i = _class_char(src, i)
        hi = lo
        if src.startswith("-", i) and i + 1 < len(src) and src[i + 1] != "]":
            hi, i = _class_char(src, i + 1)
            if hi < lo:
                raise PatternSyntaxError("syntax error in pattern: invalid character class range")
        ranges.append((lo, hi))
    return ranges, negated, i + 1


def _named_class(src: str, i: int) -> tuple[Ranges, int] | None:
    if not src.startswith("[:", i):
        return None
    end = src.find(":]", i + 2)
    if end < 0:
        return None
    name = src[i + 2 : end]
    negate = name.startswith("^")
    group = _POSIX_CLASSES.get(name[1:] if negate else name)
    if group is None:
        raise PatternSyntaxError("syntax error in pattern: invalid character class range")
    return (_negate(group) if negate else group), end + 2


def _class_char(src: str, i: int) -> tuple[int, int]:
    if i >= len(src):
        raise PatternSyntaxError("syntax error in pattern: missing closing ]")
    if src[i] == "\\":
        return _parse_escape(src, i)
    return ord(src[i]), i + 1


def _negate(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in sorted(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= MAX_RUNE:
        out.append((nxt, MAX_RUNE))
    return out


def _as_go_runes(ranges: Ranges) -> Ranges:
    """Make surrogate-escaped bytes belong to a class exactly when U+FFFD does.

    Go's regexp reads each invalid UTF-8 byte as U+FFFD; our paths carry such a
    byte as a lone surrogate U+DC80..U+DCFF instead.
    """
    out: Ranges = []
    for lo, hi in ranges:
        if lo < _SURROGATE_LO:
            out.append((lo, min(hi, _SURROGATE_LO - 1)))
        if hi > _SURROGATE_HI:
            out.append((max(lo, _SURROGATE_HI + 1), hi))
    if any(lo <= _RUNE_ERROR <= hi for lo, hi in ranges):
        out.append((_SURROGATE_LO, _SURROGATE_HI))
    return out


def _emit_class(ranges: Ranges, negated: bool) -> str:
    ranges = _as_go_runes(ranges)
    body = "".join(_lit(lo) if lo == hi else f"{_lit(lo)}-{_lit(hi)}" for lo, hi in ranges)
    return f"[{'^' if negated else ''}{body}]"

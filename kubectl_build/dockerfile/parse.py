"""Read a Dockerfile into instructions: directives, continuations, comments, heredocs. Pure.

Only what the multi-platform planner needs is interpreted (``kubectl_build.dockerfile.analysis``);
every instruction is still split correctly so that a ``RUN`` inside a heredoc body or a
continued line is never mistaken for an instruction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kubectl_build.dockerfile.words import DockerfileError, split_words

_DIRECTIVE = re.compile(r"#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*")
# Any other "# name=value" line is a comment, and so ends the directives.
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z0-9_.-]+)\2")
# Instructions whose shell form may carry heredocs, as the frontend accepts them.
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
# Instructions that take leading --flag[=value] words.
_FLAG_KEYWORDS = frozenset({"FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"})

@dataclass(frozen=True)
class Heredoc:
    """A ``<<NAME`` body that followed an instruction."""

    name: str
    """The delimiter word."""
    body: str
    """The lines up to (not including) the delimiter, newline-terminated."""


@dataclass(frozen=True)
class Instruction:
    """One instruction after joining continued lines."""

    keyword: str
    """Upper-cased instruction name, e.g. ``FROM``."""
    flags: tuple[tuple[str, str], ...]
    """Leading ``--name=value`` flags, raw (quotes and ``$VAR`` not yet processed)."""
    args: str
    """The text after the flags, raw."""
    line: int
    """1-based line where the instruction starts."""
    json_form: bool = False
    """Whether ``args`` is a JSON array (exec form)."""
    heredocs: tuple[Heredoc, ...] = ()
    """Heredoc bodies, in the order their markers appear."""

    def flag(self, name: str) -> str | None:
        """The raw value of the last ``--name`` flag, or None."""
        values = [value for key, value in self.flags if key == name]
        return values[-1] if values else None


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile."""

    instructions: tuple[Instruction, ...]
    """Every instruction in order."""
    escape: str = "\\"
    """The escape character (``# escape=`` directive)."""
    directives: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """Parser directives from the top of the file, lower-cased names (``syntax``, ``escape``...)."""

    @property
    def preamble(self) -> tuple[Instruction, ...]:
        """Instructions before the first FROM (only ARGs are allowed there)."""
        return self.instructions[: self._first_from()]

    @property
    def stages(self) -> tuple[tuple[Instruction, ...], ...]:
        """Each stage's instructions, its FROM first."""
        starts = [i for i, ins in enumerate(self.instructions) if ins.keyword == "FROM"]
        ends = [*starts[1:], len(self.instructions)] if starts else []
        return tuple(self.instructions[s:e] for s, e in zip(starts, ends, strict=True))

    def _first_from(self) -> int:
        for i, ins in enumerate(self.instructions):
            if ins.keyword == "FROM":
                return i
        return len(self.instructions)


def parse_dockerfile(text: str) -> Dockerfile:
    """Parse Dockerfile text into instructions.

    Raises:
        DockerfileError: a bad escape directive, an unterminated heredoc, no FROM, or a
            non-ARG instruction before the first FROM.
    """
    # Editors on Windows may start the file with a byte-order mark; it is not part of line 1.
    lines = text.removeprefix("\ufeff").splitlines()
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f'invalid escape directive "{escape}"', "use # escape=\\ or # escape=`")
    instructions = _instructions(lines, start, escape)
    dockerfile = Dockerfile(instructions, escape, MappingProxyType(directives))
    _check_layout(dockerfile)
    return dockerfile


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """Parser directives: only at the very top, until the first line that is not a known one."""
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = _DIRECTIVE.fullmatch(line.strip())
        name, value = (match.group(1).lower(), match.group(2)) if match else ("", "")
        if name not in _KNOWN_DIRECTIVES or name in found:
            return found, index
        found[name] = value
    return found, len(lines)


def _is_skipped(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _instructions(lines: list[str], index: int, escape: str) -> tuple[Instruction, ...]:
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    result: list[Instruction] = []
    while index < len(lines):
        if _is_skipped(lines[index]):
            index += 1
            continue
        start = index
        text = lines[index]
        index += 1
        while (match := continuation.search(text)) is not None:
            text = text[: match.start()]
            # Comment and empty lines inside a continued instruction are dropped.
            while index < len(lines) and _is_skipped(lines[index]):
                index += 1
            if index == len(lines):
                break
            text += lines[index]
            index += 1
        instruction = _instruction(text, start + 1, escape)
        names = _heredoc_markers(instruction, escape)
        bodies, index = _read_heredocs(lines, index, names, start + 1)
        result.append(Instruction(instruction.keyword, instruction.flags, instruction.args,
                                  instruction.line, instruction.json_form, bodies))
    return tuple(result)


def _instruction(text: str, line: int, escape: str) -> Instruction:
    keyword, *tail = text.split(None, 1)
    keyword, rest = keyword.upper(), tail[0].strip() if tail else ""
    flags: list[tuple[str, str]] = []
    if keyword in _FLAG_KEYWORDS:
        rest = _take_flags(rest, escape, flags)
    return Instruction(keyword, tuple(flags), rest, line, _is_json(rest))


def _take_flags(rest: str, escape: str, flags: list[tuple[str, str]]) -> str:
    """Move leading ``--name[=value]`` words of ``rest`` into ``flags``; returns what is left."""
    while rest.startswith("--"):
        word = split_words(rest, escape)[0]
        name, _, value = word[2:].partition("=")
        flags.append((name.lower(), value))
        rest = rest[len(word) :].lstrip()
    return rest


def _is_json(args: str) -> bool:
    if not args.startswith("["):
        return False
    try:
        parsed = json.loads(args)
    except ValueError:
        return False
    return isinstance(parsed, list) and all(isinstance(item, str) for item in parsed)


def _heredoc_markers(instruction: Instruction, escape: str) -> list[tuple[str, bool]]:
    """``(name, strip_tabs)`` for each ``<<NAME`` word of a RUN/COPY/ADD shell form."""
    if instruction.keyword not in _HEREDOC_KEYWORDS or instruction.json_form:
        return []
    markers = []
    for word in split_words(instruction.args, escape):
        match = _HEREDOC.match(word)
        if match:
            markers.append((match.group(3), match.group(1) == "-"))
    return markers


def _read_heredocs(lines: list[str], index: int, markers: list[tuple[str, bool]],
                   line: int) -> tuple[tuple[Heredoc, ...], int]:
    bodies = []
    for name, strip_tabs in markers:
        body: list[str] = []
        while True:
            if index == len(lines):
                raise DockerfileError(f"Dockerfile line {line}: heredoc <<{name} is never closed",
                                      f"end it with a line holding only {name}")
            text = lines[index].lstrip("\t") if strip_tabs else lines[index]
            index += 1
            if text == name:
                break
            body.append(text + "\n")
        bodies.append(Heredoc(name, "".join(body)))
    return tuple(bodies), index


def _check_layout(dockerfile: Dockerfile) -> None:
    for ins in dockerfile.preamble:
        if ins.keyword != "ARG":
            raise DockerfileError(f"Dockerfile line {ins.line}: {ins.keyword} before the first FROM",
                                  "only ARG may come before FROM")
    if not dockerfile.stages:
        raise DockerfileError("the Dockerfile has no FROM instruction")

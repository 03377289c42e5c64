"""Unit tests for the Dockerfile reader and per-platform stage analysis."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubectl_build.dockerfile.analysis import (
    Analysis,
    DockerfileError,
    analyse,
    parse_dockerfile,
    platform_args,
)
from kubectl_build.dockerfile.words import expand, split_words
from kubectl_build.errors import ContextError, UsageError
from kubectl_build.options.build import Platform, parse_platform

REPO = Path(__file__).resolve().parents[3]
AMD64 = parse_platform("linux/amd64")


def _analyse(text: str, platform: str = "linux/arm64", build: str = "linux/amd64",
             **kwargs: object) -> Analysis:
    return analyse(parse_dockerfile(text), parse_platform(platform), parse_platform(build),
                   **kwargs)  # type: ignore[arg-type]


def _summary(analysis: Analysis) -> list[tuple[str, str, bool]]:
    return [(s.label, str(s.platform), s.has_run) for s in analysis.stages]


# --- the repository's cross-compilation example -------------------------------------------

@pytest.mark.parametrize("target", ["linux/386", "linux/amd64", "linux/arm/v6", "linux/arm/v7",
                                    "linux/arm64"])
def test_cross_example_linux_targets(target: str) -> None:
    text = (REPO / "examples" / "Dockerfile.cross").read_text()
    analysis = _analyse(text, target)
    assert _summary(analysis) == [("build", "linux/amd64", True),
                                  ("release-linux", target, False), ("#3", target, False)]
    assert analysis.target.base == "release-linux"
    assert analysis.target.base_stage == 1
    assert [s.platform for s in analysis.run_stages] == [AMD64]


def test_cross_example_windows_target_copies_only() -> None:
    text = (REPO / "examples" / "Dockerfile.cross").read_text()
    analysis = _analyse(text, "windows/amd64")
    assert _summary(analysis) == [("build", "linux/amd64", True),
                                  ("release-windows", "windows/amd64", False),
                                  ("#3", "windows/amd64", False)]
    assert analysis.foreign_os_run_stages == ()
    assert analysis.stages[1].base == "mcr.microsoft.com/windows/nanoserver:ltsc2022"


def test_cross_example_build_stage_follows_the_builder() -> None:
    text = (REPO / "examples" / "Dockerfile.cross").read_text()
    analysis = _analyse(text, "linux/amd64", build="linux/arm64")
    assert analysis.stages[0].platform == parse_platform("linux/arm64")
    assert analysis.stages[0].run_lines == (15,)


# --- ARGs and substitution in FROM -------------------------------------------------------

ARG_DRIVEN = """\
ARG REGISTRY=docker.io
ARG IMAGE="${REGISTRY}/library/alpine"
ARG TAG
ARG TOOLPLATFORM=${BUILDPLATFORM}
FROM --platform=${TOOLPLATFORM} ${IMAGE}:${TAG:-3.20} AS tools
RUN apk add go
FROM $IMAGE:${TARGETARCH}-${TARGETVARIANT#v}
COPY --from=tools /usr/bin/go /go
"""


def test_global_args_defaults_and_automatic_args() -> None:
    analysis = _analyse(ARG_DRIVEN, "linux/arm/v7")
    tools, final = analysis.stages
    assert tools.base == "docker.io/library/alpine:3.20"
    assert tools.platform == AMD64
    assert final.base == "docker.io/library/alpine:arm-7"
    assert final.platform == parse_platform("linux/arm/v7")
    assert final.dependencies == (0,)


def test_build_args_override_global_defaults() -> None:
    analysis = _analyse(ARG_DRIVEN, build_args={"REGISTRY": "r.example.com", "TAG": "edge",
                                                "TOOLPLATFORM": "linux/riscv64"})
    assert analysis.stages[0].base == "r.example.com/library/alpine:edge"
    assert analysis.stages[0].platform == parse_platform("linux/riscv64")


def test_build_args_cannot_override_automatic_platform_args() -> None:
    analysis = _analyse("FROM --platform=$BUILDPLATFORM alpine\nRUN true\n",
                        build_args={"BUILDPLATFORM": "linux/s390x"})
    assert analysis.stages[0].platform == AMD64


def test_platform_flag_is_normalised() -> None:
    analysis = _analyse("ARG P=aarch64\nFROM --platform=linux/$P alpine\nRUN true\n")
    assert analysis.stages[0].platform == parse_platform("linux/arm64")


def test_undeclared_and_empty_platform_fall_back_to_target() -> None:
    analysis = _analyse("FROM --platform=$NOPE alpine\nRUN true\n", "linux/s390x")
    assert analysis.stages[0].platform == parse_platform("linux/s390x")


def test_invalid_platform_flag_names_the_line() -> None:
    with pytest.raises(DockerfileError, match="line 2: FROM --platform=linux/pdp11"):
        _analyse("ARG A=pdp11\nFROM --platform=linux/$A alpine\n")


def test_platform_args_per_target() -> None:
    assert platform_args(parse_platform("linux/arm/v7"), AMD64) == {
        "TARGETPLATFORM": "linux/arm/v7", "TARGETOS": "linux", "TARGETARCH": "arm",
        "TARGETVARIANT": "v7", "BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux",
        "BUILDARCH": "amd64", "BUILDVARIANT": ""}


# --- stage chains and dependencies ---------------------------------------------------------

CHAIN = """\
FROM --platform=$BUILDPLATFORM golang:1.22 AS gobuild
RUN go build ./...
FROM debian AS base
RUN apt-get update
FROM base AS dev
RUN make
FROM alpine AS unused
RUN echo never
FROM --platform=$BUILDPLATFORM busybox AS cachefill
FROM gobuild AS cross
ARG SRC=gobuild
RUN --mount=type=cache,target=/cache,from=cachefill \\
    --mount=type=bind,from=${SRC},source=/out,target=/in true
FROM scratch AS final
COPY --from=cross /out /bin
COPY --from=1 /etc/passwd /etc/passwd
COPY --from=docker.io/library/busybox:latest /bin/sh /bin/sh
"""


def test_chain_keeps_only_needed_stages_with_platforms() -> None:
    analysis = _analyse(CHAIN)
    assert _summary(analysis) == [
        ("gobuild", "linux/amd64", True), ("base", "linux/arm64", True),
        ("cachefill", "linux/amd64", False), ("cross", "linux/amd64", True),
        ("final", "linux/arm64", False)]
    by_name = {s.name: s for s in analysis.stages}
    assert by_name["cross"].dependencies == (0, 4)
    assert by_name["cross"].base_stage == 0
    assert by_name["final"].dependencies == (1, 5)


def test_from_stage_inherits_platform_through_the_chain() -> None:
    analysis = _analyse(CHAIN, target="dev")
    assert _summary(analysis) == [("base", "linux/arm64", True), ("dev", "linux/arm64", True)]
    assert analysis.target.name == "dev"


def test_target_is_case_insensitive_and_must_exist() -> None:
    assert _analyse(CHAIN, target="CROSS").target.name == "cross"
    with pytest.raises(UsageError, match='target stage "nope" not found') as err:
        _analyse(CHAIN, target="nope")
    assert "gobuild, base, dev" in (err.value.hint or "")


def test_stage_names_are_case_insensitive() -> None:
    analysis = _analyse("FROM alpine As Builder\nRUN x\nFROM scratch\nCOPY --from=BUILDER /a /a\n")
    assert [s.label for s in analysis.stages] == ["builder", "#1"]


def test_copy_from_a_later_stage_is_a_dependency() -> None:
    analysis = _analyse("FROM scratch AS out\nCOPY --from=later /a /a\nFROM alpine AS later\nRUN x\n",
                        target="out")
    assert [s.name for s in analysis.stages] == ["out", "later"]


def test_from_a_later_stage_name_is_an_image() -> None:
    analysis = _analyse("FROM later\nRUN x\nFROM alpine AS later\n", target=None)
    assert [s.name for s in analysis.stages] == ["later"]
    analysis = _analyse("FROM later AS first\nFROM alpine AS later\n", target="first")
    assert analysis.target.base_stage is None


def test_copy_from_stage_arg_and_env() -> None:
    text = "FROM alpine AS a\nFROM alpine AS b\nFROM scratch\nARG WHICH=a\nENV OTHER=b\n" \
           "COPY --from=$WHICH /x /x\nCOPY --from=${OTHER} /y /y\n"
    assert [s.label for s in _analyse(text).stages] == ["a", "b", "#2"]
    text = "ARG WHICH=b\nFROM alpine AS a\nFROM alpine AS b\nFROM scratch\nARG WHICH\n" \
           "COPY --from=$WHICH /x /\n"
    assert [s.label for s in _analyse(text).stages] == ["b", "#2"]
    assert [s.label for s in _analyse(text, build_args={"WHICH": "a"}).stages] == ["a", "#2"]


def test_dependency_cycles_and_self_copies_are_errors() -> None:
    text = "FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\nCOPY --from=a /y /y\n"
    with pytest.raises(DockerfileError, match="depend on each other: b -> a -> b"):
        _analyse(text)
    with pytest.raises(DockerfileError, match="copies from itself"):
        _analyse("FROM alpine AS a\nCOPY --from=a /x /y\n")


def test_duplicate_stage_names_and_bad_from() -> None:
    with pytest.raises(DockerfileError, match='duplicate stage name "a"'):
        _analyse("FROM alpine AS a\nFROM alpine AS A\n")
    with pytest.raises(DockerfileError, match="FROM takes IMAGE"):
        _analyse("FROM alpine AS\n")


def test_windows_stage_with_run_is_reported() -> None:
    analysis = _analyse("FROM mcr.microsoft.com/windows/servercore:ltsc2022\nRUN dir\n",
                        "windows/amd64")
    assert [s.label for s in analysis.foreign_os_run_stages] == ["#0"]


# --- the reader ----------------------------------------------------------------------------

def test_heredocs_are_skipped_not_parsed() -> None:
    text = """\
FROM alpine
RUN <<EOF cat >/a && <<-"END" cat >/b
FROM evil
RUN nothing
EOF
\t\tindented body
\tEND
COPY <<CONF /etc/conf
[section]
CONF
"""
    dockerfile = parse_dockerfile(text)
    assert [i.keyword for i in dockerfile.instructions] == ["FROM", "RUN", "COPY"]
    run = dockerfile.instructions[1]
    assert [(h.name, h.body) for h in run.heredocs] == [
        ("EOF", "FROM evil\nRUN nothing\n"), ("END", "indented body\n")]
    assert dockerfile.instructions[2].line == 8
    assert len(dockerfile.stages) == 1


def test_heredoc_markers_only_in_shell_form_words() -> None:
    dockerfile = parse_dockerfile('FROM a\nRUN echo $((1<<2))\nRUN ["sh", "-c", "cat <<EOF"]\n')
    assert [i.heredocs for i in dockerfile.instructions] == [(), (), ()]
    assert dockerfile.instructions[2].json_form


def test_unterminated_heredoc_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="line 2: heredoc <<EOF is never closed"):
        parse_dockerfile("FROM a\nRUN <<EOF\necho\n")


def test_continuations_comments_and_blank_lines() -> None:
    text = "# a comment\n\nFROM alpine\nRUN apk add \\\n# inside\n\n    curl \\  \n  git\n\n" \
           "   # indented comment\ncopy --from=0 \\\n /a /b\n"
    dockerfile = parse_dockerfile(text)
    assert [(i.keyword, i.line) for i in dockerfile.instructions] == [
        ("FROM", 3), ("RUN", 4), ("COPY", 11)]
    assert dockerfile.instructions[1].args == "apk add     curl   git"
    assert dockerfile.instructions[2].flags == (("from", "0"),)


def test_escape_directive_backtick() -> None:
    text = "# escape=`\n# syntax=docker/dockerfile:1\nFROM mcr.microsoft.com/windows/nanoserver\n" \
           "COPY testfile.txt c:\\\nRUN dir c:\\ `\n    && echo done\n"
    dockerfile = parse_dockerfile(text)
    assert dockerfile.escape == "`"
    assert dict(dockerfile.directives) == {"escape": "`", "syntax": "docker/dockerfile:1"}
    assert [i.keyword for i in dockerfile.instructions] == ["FROM", "COPY", "RUN"]
    assert dockerfile.instructions[2].args == "dir c:\\     && echo done"


def test_directives_stop_at_the_first_other_line() -> None:
    dockerfile = parse_dockerfile("# comment\n# escape=`\nFROM a\nRUN x \\\n  y\n")
    assert dict(dockerfile.directives) == {}
    assert dockerfile.instructions[1].args == "x   y"


def test_unknown_directive_ends_the_directives() -> None:
    dockerfile = parse_dockerfile("# syntax=x\n# foo=bar\n# escape=`\nFROM a\n")
    assert dict(dockerfile.directives) == {"syntax": "x"}
    assert dockerfile.escape == "\\"


def test_byte_order_mark_and_tabs() -> None:
    dockerfile = parse_dockerfile("\ufeff# escape=`\nFROM\ta\tAS b\nrun\t\techo `\n x\nUSER\n")
    assert dockerfile.escape == "`"
    assert [(i.keyword, i.args) for i in dockerfile.instructions] == [
        ("FROM", "a\tAS b"), ("RUN", "echo  x"), ("USER", "")]
    assert _analyse("FROM\ta\tAS b\n").target.name == "b"


def test_bad_escape_directive() -> None:
    with pytest.raises(DockerfileError, match="invalid escape directive"):
        parse_dockerfile("# escape=x\nFROM a\n")


def test_layout_errors_are_context_errors() -> None:
    with pytest.raises(ContextError, match="RUN before the first FROM"):
        parse_dockerfile("ARG A\nRUN x\nFROM a\n")
    with pytest.raises(ContextError, match="no FROM"):
        parse_dockerfile("# just a comment\nARG A\n")


def test_flags_and_json_form() -> None:
    dockerfile = parse_dockerfile(
        'FROM --platform="linux/arm64" alpine\nRUN --network=none --mount=type=cache,target=/c '
        '["echo", "hi"]\nCMD [not json\n')
    first, run, cmd = dockerfile.instructions
    assert first.flag("platform") == '"linux/arm64"' and first.args == "alpine"
    assert run.flags == (("network", "none"), ("mount", "type=cache,target=/c"))
    assert run.json_form and not cmd.json_form


# --- words ---------------------------------------------------------------------------------

ENV = {"A": "alpha", "E": "", "V": "v7", "F": "file.tar.gz"}


@pytest.mark.parametrize(("word", "expected"), [
    ("$A", "alpha"), ("${A}x", "alphax"), ("$Ax", ""), ("'$A'", "$A"), ('"$A b"', "alpha b"),
    ("\\$A", "$A"), ('"\\$A\\q"', "$A\\q"), ("${U:-d}", "d"), ("${E:-d}", "d"), ("${E-d}", ""),
    ("${U-d}", "d"), ("${A:+set}", "set"), ("${E:+set}", ""), ("${E+set}", "set"),
    ("${V#v}", "7"), ("${F#*.}", "tar.gz"), ("${F##*.}", "gz"), ("${F%.*}", "file.tar"),
    ("${F%%.*}", "file"), ("${A/l/L}", "aLpha"), ("${A//a/A}", "AlphA"),
    ("${U:-${A}}", "alpha"), ("$", "$"), ("a$1", "a$1"), ("${A:?}", "alpha"),
])
def test_expand(word: str, expected: str) -> None:
    assert expand(word, ENV) == expected


@pytest.mark.parametrize(("word", "message"), [
    ("${U:?must be set}", "U: must be set"), ("${E:?}", "E: parameter not set"),
    ("${A", "missing '}'"), ("'open", "unterminated quote"), ("${1}", "bad substitution"),
    ("${A^^}", "bad substitution"),
])
def test_expand_errors(word: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        expand(word, ENV)


def test_expand_with_backtick_escape() -> None:
    assert expand("c:\\`$A", ENV, escape="`") == "c:\\$A"


def test_split_words_keeps_quotes() -> None:
    assert split_words('a "b c" \'d e\' f\\ g') == ["a", '"b c"', "'d e'", "f\\ g"]


def test_platform_type_is_the_options_one() -> None:
    assert isinstance(_analyse("FROM a\n").target.platform, Platform)

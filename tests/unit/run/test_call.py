"""What --call/--check print, from the frontend's result metadata (golden answers)."""

from __future__ import annotations

import json

import pytest

from kubectl_build.errors import BuildFailedError
from kubectl_build.options.call import CallFunc
from kubectl_build.run.call import render_call

FINDING = ("WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n"
           "'as' and 'FROM' keywords' casing do not match\nDockerfile:1\n--------------------\n"
           "   1 | >>> FROM busybox as base\n--------------------\n\n")


def _lint(warnings: int, **extra: object) -> dict[str, str]:
    result = {"warnings": [{"ruleName": "FromAsCasing"}] * warnings or None, **extra}
    return {"result.json": json.dumps(result), "result.txt": FINDING * warnings,
            "result.statuscode": "1" if warnings else "0", "version": "1.0.0"}


def test_lint_findings_get_buildx_summary_and_status() -> None:
    answer = render_call(CallFunc("lint"), _lint(2))
    assert answer.text == "Check complete, 2 warnings have been found!\n" + FINDING * 2
    assert answer.code == 1


def test_one_finding_is_singular() -> None:
    text = render_call(CallFunc("lint"), _lint(1)).text
    assert text.startswith("Check complete, 1 warning has been found!\n")


def test_clean_lint() -> None:
    answer = render_call(CallFunc("lint"), _lint(0))
    assert (answer.text, answer.code) == ("Check complete, no warnings found.\n", 0)


def test_ignorestatus_exits_zero() -> None:
    assert render_call(CallFunc("lint", ignore_status=True), _lint(1)).code == 0


def test_findings_show_the_path_the_user_gave() -> None:
    text = render_call(CallFunc("lint"), _lint(1), "build/Dockerfile").text
    assert "\nbuild/Dockerfile:1\n" in text and "\nDockerfile:1\n" not in text


def test_json_is_the_frontends_json_alone() -> None:
    metadata = _lint(1)
    answer = render_call(CallFunc("lint", "json"), metadata)
    assert answer.text == metadata["result.json"] + "\n"


def test_outline_prints_the_frontends_text() -> None:
    answer = render_call(CallFunc("outline"), {"result.txt": "TARGET: two\n\n", "version": "1.0.0"})
    assert (answer.text, answer.code) == ("TARGET: two\n\n", 0)


def test_syntax_error_names_file_and_line() -> None:
    failure = {"message": "dockerfile parse error on line 2: unknown instruction: RUNX",
               "location": {"ranges": [{"start": {"line": 2}, "end": {"line": 2}}]}}
    metadata = _lint(0, buildError=failure, sources=[{"filename": "Dockerfile"}])
    with pytest.raises(BuildFailedError, match=r"\(Dockerfile:2\): dockerfile parse error on line 2"):
        render_call(CallFunc("lint"), metadata)

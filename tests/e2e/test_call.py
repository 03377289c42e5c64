"""``--call`` and ``--check`` against the test bed's buildkitd, compared with buildx's answers.

Both clients ask the same daemon's Dockerfile frontend; what they print on stdout must be
the same bytes, and they must exit alike (1 when lint finds something, 0 with
ignorestatus or when it finds nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.buildx import Buildx, buildx_binary
from tests.e2e.helpers import Testbed, run_cli

pytestmark = pytest.mark.e2e

DOCKERFILES = {
    "casing": "from busybox as base\nRUN echo hi\nFROM base\nCOPY a /a\n",
    "clean": "FROM busybox\nCOPY a /a\n",
    "outline": "ARG BASE=busybox\nFROM $BASE AS one\n# X picks the flavour\nARG X=1\n"
               "RUN --mount=type=secret,id=tok,required=true true\nFROM one AS two\n",
    "two-findings": "FROM busybox AS Base\nMAINTAINER me\nCOPY a /a\n",
}
CALLS = [
    ("casing", ["--check"], 1),
    ("casing", ["--call", "check,ignorestatus=true"], 0),
    ("two-findings", ["--call", "check"], 1),
    ("clean", ["--check"], 0),
    ("outline", ["--call", "outline"], 0),
    ("outline", ["--call", "targets"], 0),
    ("outline", ["--call", "targets,format=json"], 0),
    ("outline", ["--call", "subrequests.describe"], 0),
]


@pytest.fixture(scope="module")
def buildx(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Buildx:
    return Buildx.create(buildx_binary(), tmp_path_factory.mktemp("buildx"), testbed.buildkit_host)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ctx = tmp_path_factory.mktemp("call")
    (ctx / "a").write_text("a\n")
    for name, text in DOCKERFILES.items():
        (ctx / f"{name}.Dockerfile").write_text(text)
    return ctx


@pytest.mark.parametrize("dockerfile,args,code", CALLS, ids=[f"{d}-{'-'.join(a)}" for d, a, _ in CALLS])
def test_answer_matches_buildx(testbed: Testbed, buildx: Buildx, project: Path, dockerfile: str,
                               args: list[str], code: int) -> None:
    common = [str(project), "-f", str(project / f"{dockerfile}.Dockerfile"), "--progress", "quiet", *args]
    ours = run_cli(*common, "--buildkit-host", testbed.buildkit_host)
    theirs = buildx.run("build", *common)
    assert (ours.code, theirs.code) == (code, code), (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    assert ours.stdout.strip(), "the frontend answered nothing"


def test_lint_json_names_every_rule(testbed: Testbed, buildx: Buildx, project: Path) -> None:
    common = [str(project), "-f", str(project / "two-findings.Dockerfile"), "--progress", "quiet",
              "--call", "check,format=json"]
    ours = json.loads(run_cli(*common, "--buildkit-host", testbed.buildkit_host).stdout)
    theirs = json.loads(buildx.run("build", *common).stdout)
    rules = sorted(w["ruleName"] for w in ours["warnings"])
    assert rules == sorted(w["ruleName"] for w in theirs["warnings"])
    assert "MaintainerDeprecated" in rules and len(rules) >= 2


def test_syntax_error_is_one_line_naming_file_and_line(testbed: Testbed, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUNX echo hi\n")
    run = run_cli(str(tmp_path), "--buildkit-host", testbed.buildkit_host, "--check", "--progress", "quiet")
    assert run.code == 5
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Dockerfile:2" in lines[0] and "unknown instruction: RUNX" in lines[0]
    assert "Traceback" not in run.stderr
    assert run.stdout == ""

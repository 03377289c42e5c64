"""buildx spellings of the build switches (``--push=true``)."""

from __future__ import annotations

import pytest

from kubectl_build.cli.compat import spell_switches


@pytest.mark.parametrize("argv,expected", [
    ([".", "--push=true"], [".", "--push"]),
    ([".", "--push=false", "-t", "a"], [".", "-t", "a"]),
    ([".", "--load=1", "--pull=T"], [".", "--load", "--pull"]),
    ([".", "--push=maybe"], [".", "--push=maybe"]),  # click says it takes no value
    ([".", "--", "--push=true"], [".", "--", "--push=true"]),
    ([".", "--build-arg=A=true"], [".", "--build-arg=A=true"]),
    ([".", "-t=r/a:1", "-f=Dockerfile.x"], [".", "-t", "r/a:1", "-f", "Dockerfile.x"]),  # cobra's short form
    ([".", "-q=true", "-o=type=local,dest=o"], [".", "-q", "-o", "type=local,dest=o"]),
    ([".", "-tr/a"], [".", "-tr/a"]),
])
def test_switches_spelled_with_values(argv: list[str], expected: list[str]) -> None:
    assert spell_switches(argv) == expected

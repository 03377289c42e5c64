"""--call / --check values, parsed as buildx reads them."""

from __future__ import annotations

import pytest

from kubectl_build.errors import UsageError
from kubectl_build.options.call import CallFunc, parse_call


@pytest.mark.parametrize("value,check,expected", [
    (None, False, None),
    ("build", False, None),
    (None, True, CallFunc("lint")),
    ("check", False, CallFunc("lint")),
    ("lint", False, CallFunc("lint")),
    ("outline", False, CallFunc("outline")),
    ("targets,format=json", False, CallFunc("targets", "json")),
    ("format=json,outline", False, CallFunc("outline", "json")),
    ("check,ignorestatus=true", False, CallFunc("lint", "", True)),
    ("check,ignorestatus=0", False, CallFunc("lint", "", False)),
    ("subrequests.describe", False, CallFunc("subrequests.describe")),
])
def test_values(value: str | None, check: bool, expected: CallFunc | None) -> None:
    assert parse_call(value, check) == expected


def test_request_id() -> None:
    assert CallFunc("lint").request_id == "frontend.lint"


@pytest.mark.parametrize("value,check,fragment", [
    ("nope", False, "unknown subrequest 'nope'"),
    ("format=json", False, "no subrequest named"),
    ("check,outline", False, "more than one name"),
    ("check,format=yaml", False, "format 'yaml' is not json"),
    ("check,ignorestatus=maybe", False, "ignorestatus 'maybe'"),
    ("check,colour=red", False, "unknown field 'colour'"),
    ("outline", True, "cannot be combined"),
])
def test_bad_values(value: str, check: bool, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as caught:
        parse_call(value, check)
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.one_line()

"""``--shm-size`` and ``--ulimit``: docker's units, one line per bad value."""

from __future__ import annotations

import pytest

from kubectl_build.errors import UsageError
from kubectl_build.options.resources import parse_shm_size, parse_ulimit, ulimit_attr


@pytest.mark.parametrize(("value", "size"), [
    ("1024", 1024), ("64m", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30), ("2GiB", 2 << 30),
    ("1.5k", 1536), ("512 kb", 512 << 10), ("1b", 1), ("0", 0),
])
def test_sizes_in_binary_units(value: str, size: int) -> None:
    assert parse_shm_size(value) == size


@pytest.mark.parametrize("value", ["", "lots", "-1m", "1.2.3m", "64x"])
def test_bad_sizes(value: str) -> None:
    with pytest.raises(UsageError, match=r'^invalid --shm-size "'):
        parse_shm_size(value)


def test_ulimits_take_soft_and_hard_and_the_last_of_a_name_wins() -> None:
    assert parse_ulimit("nofile=1024") == ("nofile", 1024, 1024)
    assert parse_ulimit("nproc=-1:-1") == ("nproc", -1, -1)
    assert ulimit_attr(["nproc=64:128", "nofile=1024:2048", "nproc=32"]) == "nofile=1024:2048,nproc=32:32"
    assert ulimit_attr([]) == ""


@pytest.mark.parametrize(("value", "why"), [
    ("nofile", "expected NAME=SOFT[:HARD]"), ("files=1", 'unknown limit "files"'),
    ("nofile=a:1", "'a' is not a number"), ("nofile=10:5", "the soft limit 10 is above the hard limit 5"),
])
def test_bad_ulimits(value: str, why: str) -> None:
    with pytest.raises(UsageError) as failed:
        parse_ulimit(value)
    assert failed.value.message == f'invalid --ulimit "{value}": {why}'

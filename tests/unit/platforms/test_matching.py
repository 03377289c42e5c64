"""Unit tests for matching platforms against Kubernetes nodes and BuildKit workers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kubectl_build.options.build import Platform, parse_platform
from kubectl_build.platforms.matching import (
    builder_suffix,
    can_emulate,
    from_parts,
    node_platform,
    node_selector,
    serves_natively,
    worker_platforms,
    worker_runs,
)


def _p(text: str) -> Platform:
    return parse_platform(text)


@dataclass(frozen=True)
class _Reported:
    """Shaped like BuildKit's pb.Platform."""

    os: str
    architecture: str
    variant: str = ""


def test_worker_platforms_normalised_in_order_unknown_dropped() -> None:
    reported = [_Reported("linux", "amd64"), _Reported("linux", "amd64", "v2"),
                _Reported("linux", "arm64", "v8"), _Reported("linux", "arm64"),
                _Reported("linux", "arm", "v7"), _Reported("linux", "pdp11"), _Reported("", "")]
    assert [str(p) for p in worker_platforms(reported)] == [
        "linux/amd64", "linux/amd64/v2", "linux/arm64", "linux/arm/v7"]


def test_from_parts() -> None:
    assert from_parts("linux", "aarch64") == _p("linux/arm64")
    assert from_parts("linux", "") is None
    assert from_parts("plan10", "amd64") is None


@pytest.mark.parametrize(("labels", "variant", "expected"), [
    ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}, "", "linux/amd64"),
    ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}, "", "linux/arm64"),
    ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm"}, "", "linux/arm/v7"),
    ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm"}, "v6", "linux/arm/v6"),
    ({"kubernetes.io/os": "windows", "kubernetes.io/arch": "amd64"}, "", "windows/amd64"),
    ({"kubernetes.io/arch": "amd64"}, "", None),
    ({"beta.kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"}, "", None),
])
def test_node_platform(labels: dict[str, str], variant: str, expected: str | None) -> None:
    found = node_platform(labels, variant)
    assert (str(found) if found else None) == expected


def test_node_selector_and_builder_suffix() -> None:
    assert node_selector(_p("linux/arm/v7")) == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm"}
    assert builder_suffix(_p("linux/arm/v7")) == "arm-v7"
    assert builder_suffix(_p("linux/arm64/v8")) == "arm64"


@pytest.mark.parametrize(("host", "target", "expected"), [
    ("linux/amd64", "linux/amd64", True),
    ("linux/arm/v7", "linux/arm/v6", True),
    ("linux/arm/v6", "linux/arm/v7", False),
    ("linux/amd64/v3", "linux/amd64/v2", True),
    ("linux/amd64", "linux/amd64/v2", False),
    ("linux/amd64", "linux/386", False),
    ("linux/arm64", "linux/arm/v7", False),
    ("linux/amd64", "windows/amd64", False),
    ("linux/riscv64", "linux/riscv64", True),
])
def test_serves_natively(host: str, target: str, expected: bool) -> None:
    assert serves_natively(_p(host), _p(target)) is expected


AMD_WORKER = (_p("linux/amd64"), _p("linux/amd64/v2"), _p("linux/386"), _p("linux/arm64"))
ARM_WORKER = (_p("linux/arm64"), _p("linux/arm/v7"), _p("linux/arm/v6"), _p("linux/amd64"))


@pytest.mark.parametrize(("native", "reported", "target", "expected"), [
    ("linux/amd64", AMD_WORKER, "linux/amd64/v2", True),    # the daemon probed the CPU
    ("linux/amd64", AMD_WORKER, "linux/386", True),         # 32-bit companion, reported
    ("linux/amd64", None, "linux/386", False),              # not reported: unknown
    ("linux/amd64", AMD_WORKER, "linux/arm64", False),      # reported, but emulated
    ("linux/arm64", ARM_WORKER, "linux/arm/v7", True),
    ("linux/arm64", (_p("linux/arm64"),), "linux/arm/v7", False),  # no 32-bit kernel support
    ("linux/arm64", ARM_WORKER, "linux/amd64", False),
    ("linux/amd64", AMD_WORKER, "linux/amd64", True),
])
def test_worker_runs(native: str, reported: tuple[Platform, ...] | None, target: str,
                     expected: bool) -> None:
    assert worker_runs(_p(native), reported, _p(target)) is expected


def test_can_emulate() -> None:
    assert can_emulate(_p("linux/s390x")) and can_emulate(_p("linux/arm/v6"))
    assert not can_emulate(_p("linux/mipsle"))
    assert not can_emulate(_p("windows/amd64"))

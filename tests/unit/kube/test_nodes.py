"""Nodes as the planner sees them, from their JSON: platform, Ready, cordon and taints."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_build.kube.nodes import VARIANT_KEY, Node, blocking_taints, node_from, tolerates
from kubectl_build.platforms.platform import Platform


def node(  # noqa: PLR0913 - test data: one keyword per field it varies
    name: str = "n1",
    arch: str | None = "amd64",
    os_name: str | None = "linux",
    *,
    ready: str = "True",
    unschedulable: bool = False,
    taints: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    info: dict[str, str] | None = None,
) -> dict[str, Any]:
    all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    if arch is not None:
        all_labels["kubernetes.io/arch"] = arch
    if os_name is not None:
        all_labels["kubernetes.io/os"] = os_name
    spec: dict[str, Any] = {"taints": taints} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {"name": name, "labels": all_labels, "annotations": annotations or {}},
        "spec": spec,
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}],
            "nodeInfo": info or {},
        },
    }


def test_ready_amd64_node() -> None:
    assert node_from(node()) == Node("n1", Platform("linux", "amd64"), ready=True, schedulable=True)


def test_arm_nodes_get_the_assumed_variant_unless_told() -> None:
    assert node_from(node(arch="arm")).platform == Platform("linux", "arm", "v7")
    assert node_from(node(arch="arm", labels={VARIANT_KEY: "v6"})).platform == Platform("linux", "arm", "v6")
    told = node(arch="arm", annotations={VARIANT_KEY: "v8"})
    assert node_from(told).platform == Platform("linux", "arm", "v8")
    # arm64/v8 is the arm64 baseline, normalised away.
    assert node_from(node(arch="arm64", labels={VARIANT_KEY: "v8"})).platform == Platform("linux", "arm64")


def test_an_unknown_variant_falls_back_to_the_baseline() -> None:
    assert node_from(node(arch="arm64", labels={VARIANT_KEY: "bogus!"})).platform == Platform(
        "linux", "arm64"
    )


def test_labels_win_and_node_info_fills_in_missing_ones() -> None:
    virtual = node(arch=None, os_name=None, info={"architecture": "arm64", "operatingSystem": "linux"})
    assert node_from(virtual).platform == Platform("linux", "arm64")
    both = node(arch="s390x", info={"architecture": "amd64", "operatingSystem": "linux"})
    assert node_from(both).platform == Platform("linux", "s390x")
    assert node_from(node(arch=None, os_name=None)).platform is None
    assert node_from(node(arch="amd64", os_name="windows")).platform == Platform("windows", "amd64")


@pytest.mark.parametrize("ready", ["False", "Unknown"])
def test_not_ready(ready: str) -> None:
    assert node_from(node(ready=ready)).ready is False
    empty = node()
    empty["status"] = {}
    assert node_from(empty).ready is False


def test_cordoned_node_is_unschedulable() -> None:
    found = node_from(node(unschedulable=True))
    assert (found.ready, found.schedulable) == (True, False)


def test_blocking_taints_unless_tolerated() -> None:
    dedicated = {"key": "dedicated", "value": "build", "effect": "NoSchedule"}
    soft = {"key": "spot", "effect": "PreferNoSchedule"}
    evict = {"key": "maintenance", "effect": "NoExecute"}
    assert node_from(node(taints=[soft])).schedulable is True
    assert node_from(node(taints=[dedicated])).schedulable is False
    assert node_from(node(taints=[evict])).schedulable is False
    ok = [{"key": "dedicated", "operator": "Equal", "value": "build", "effect": "NoSchedule"}]
    assert node_from(node(taints=[dedicated, soft]), ok).schedulable is True
    assert node_from(node(taints=[dedicated, evict]), ok).schedulable is False
    assert node_from(node(taints=[dedicated, evict]), [{"operator": "Exists"}]).schedulable is True
    assert blocking_taints([dedicated, evict, soft], ok) == [evict]


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "k", "operator": "Exists"}, True),
        ({"key": "k", "value": "v"}, True),  # operator defaults to Equal
        ({"key": "k", "operator": "Equal", "value": "w"}, False),
        ({"key": "other", "operator": "Exists"}, False),
        ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"operator": "Exists"}, True),
        ({"operator": "Equal", "value": "v"}, False),
    ],
)
def test_toleration_rules(toleration: dict[str, str], expected: bool) -> None:
    assert tolerates(toleration, {"key": "k", "value": "v", "effect": "NoSchedule"}) is expected

"""Unit tests for the multi-platform planner: a table of clusters x Dockerfiles x modes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from kubectl_build.dockerfile.analysis import Dockerfile, parse_dockerfile
from kubectl_build.errors import ExitCode
from kubectl_build.options.build import Platform, parse_platform, parse_platforms
from kubectl_build.planning.planner import (
    Cluster,
    DefaultBuilder,
    Mode,
    Node,
    PlanError,
    PlanFailure,
    PlanRequest,
    PlatformPlan,
    builder_name,
    plan_build,
)

REPO = Path(__file__).resolve().parents[3]
SIX = "linux/386,linux/amd64,linux/arm/v6,linux/arm/v7,linux/arm64,windows/amd64"


def _platforms(text: str) -> tuple[Platform, ...]:
    return parse_platforms([text], {})


AMD64, ARM64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")

# An amd64-only cluster whose builder has no emulators yet (386 runs natively on amd64).
AMD_ONLY = Cluster(DefaultBuilder("kb", AMD64, "node-a", _platforms("linux/amd64,linux/386")),
                   (Node("node-a", AMD64),))
# The same, with binfmt emulators installed for arm.
AMD_QEMU = Cluster(DefaultBuilder("kb", AMD64, "node-a", _platforms(
    "linux/amd64,linux/amd64/v2,linux/386,linux/arm64,linux/arm/v7,linux/arm/v6")),
    (Node("node-a", AMD64),))
# amd64 + arm64 nodes; the builder's platforms not asked yet.
AMD_ARM = Cluster(DefaultBuilder("kb", AMD64, "node-a"),
                  (Node("node-b", ARM64), Node("node-a", AMD64), Node("node-c", ARM64)))
# The builder on an arm64 node whose kernel runs 32-bit arm; the amd64 node is down and
# the arm node cordoned.
ARM_FIRST = Cluster(DefaultBuilder("kb", ARM64, "node-b", _platforms(
    "linux/arm64,linux/arm/v7,linux/arm/v6,linux/amd64")),
    (Node("node-a", AMD64, ready=False), Node("node-b", ARM64),
     Node("node-c", parse_platform("linux/arm/v7"), schedulable=False)))

CROSS = parse_dockerfile((REPO / "examples" / "Dockerfile.cross").read_text())
RUN_ON_TARGET = parse_dockerfile("FROM alpine\nRUN uname -m > /arch\n")
COPY_ONLY = parse_dockerfile("FROM scratch\nCOPY hello /hello\n")
WINDOWS_RUN = parse_dockerfile("FROM mcr.microsoft.com/windows/servercore:ltsc2022\n"
                               "RUN dir\nRUN echo done\n")
FIXED_ARM_TOOL = parse_dockerfile("FROM --platform=linux/arm64 alpine AS tool\nRUN make\n"
                                  "FROM scratch\nCOPY --from=tool /out /\n")

WINDOWS_FAILURE = ("windows/amd64: cannot build (stage #0 runs RUN on windows/amd64 at line 2, "
                   "but Linux builders can only copy files into Windows images)")

TABLE: list[tuple[str, Cluster, Dockerfile, Mode, str, list[str]]] = [
    ("cross example, amd64 only", AMD_ONLY, CROSS, "auto", SIX, [
        "linux/386: native on node-a (amd64 node runs 386 code)",
        "linux/amd64: native on node-a (amd64 node)",
        "linux/arm/v6: cross on node-a (every RUN runs on the build platform)",
        "linux/arm/v7: cross on node-a (every RUN runs on the build platform)",
        "linux/arm64: cross on node-a (every RUN runs on the build platform)",
        "windows/amd64: cross on node-a (every RUN runs on the build platform)"]),
    ("cross example, amd64+arm64 prefers native", AMD_ARM, CROSS, "auto", SIX, [
        "linux/386: cross on node-a (every RUN runs on the build platform)",
        "linux/amd64: native on node-a (amd64 node)",
        "linux/arm/v6: cross on node-a (every RUN runs on the build platform)",
        "linux/arm/v7: cross on node-a (every RUN runs on the build platform)",
        "linux/arm64: native on node-b, node-c (arm64 nodes)",
        "windows/amd64: cross on node-a (every RUN runs on the build platform)"]),
    ("cross example forced to qemu", AMD_QEMU, CROSS, "qemu", "linux/arm64,linux/amd64", [
        "linux/arm64: qemu on node-a (--mode qemu; nothing runs under emulation)",
        "linux/amd64: native on node-a (amd64 node)"]),
    ("cross example forced cross on amd64+arm64", AMD_ARM, CROSS, "cross", "linux/arm64", [
        "linux/arm64: cross on node-a (every RUN runs on the build platform)"]),
    ("RUN on target, amd64 only", AMD_ONLY, RUN_ON_TARGET, "auto", "linux/arm/v7,linux/amd64", [
        "linux/arm/v7: qemu on node-a (no arm nodes; Dockerfile runs RUN on the target platform)",
        "linux/amd64: native on node-a (amd64 node)"]),
    ("RUN on target, amd64+arm64", AMD_ARM, RUN_ON_TARGET, "auto", "linux/arm64,linux/arm/v7", [
        "linux/arm64: native on node-b, node-c (arm64 nodes)",
        "linux/arm/v7: qemu on node-a (no arm nodes; Dockerfile runs RUN on the target platform)"]),
    ("RUN on target, --mode native", AMD_ARM, RUN_ON_TARGET, "native", "linux/arm64,linux/s390x", [
        "linux/arm64: native on node-b, node-c (arm64 nodes)",
        "linux/s390x: cannot build (--mode native: no s390x nodes)"]),
    ("RUN on target, --mode cross", AMD_ONLY, RUN_ON_TARGET, "cross", "linux/arm64,linux/386", [
        "linux/arm64: cannot build (--mode cross: Dockerfile runs RUN on the target platform)",
        "linux/386: native on node-a (amd64 node runs 386 code)"]),
    ("RUN on target, --mode qemu skips native nodes", AMD_ARM, RUN_ON_TARGET, "qemu", "linux/arm64", [
        "linux/arm64: qemu on node-a (--mode qemu; Dockerfile runs RUN on the target platform)"]),
    ("arm64 builder runs arm natively", ARM_FIRST, RUN_ON_TARGET, "auto", SIX, [
        "linux/386: qemu on node-b (no 386 nodes; Dockerfile runs RUN on the target platform)",
        "linux/amd64: qemu on node-b (no ready amd64 node; Dockerfile runs RUN on the target platform)",
        "linux/arm/v6: native on node-b (arm64 node runs arm code)",
        "linux/arm/v7: native on node-b (arm64 node runs arm code)",
        "linux/arm64: native on node-b (arm64 node)",
        WINDOWS_FAILURE]),
    ("copy-only Dockerfile", AMD_ARM, COPY_ONLY, "auto", "linux/arm64,windows/amd64", [
        "linux/arm64: native on node-b, node-c (arm64 nodes)",
        "windows/amd64: cross on node-a (no RUN for this platform)"]),
    ("copy-only Dockerfile, --mode native", AMD_ARM, COPY_ONLY, "native", "windows/amd64", [
        "windows/amd64: cannot build (--mode native: builders run on Linux)"]),
    ("windows RUN", AMD_ONLY, WINDOWS_RUN, "auto", "windows/amd64", [
        "windows/amd64: cannot build (stage #0 runs RUN on windows/amd64 at lines 2, 3, "
        "but Linux builders can only copy files into Windows images)"]),
    ("a fixed-platform RUN stage", AMD_ONLY, FIXED_ARM_TOOL, "auto", "linux/amd64,linux/s390x", [
        "linux/amd64: native on node-a (amd64 node)",
        "linux/s390x: qemu on node-a (no s390x nodes; stage tool runs RUN on linux/arm64)"]),
    ("macOS files cross-compiled", AMD_ONLY, COPY_ONLY, "auto", "darwin/arm64", [
        "darwin/arm64: cross on node-a (no RUN for this platform)"]),
    ("macOS RUN", AMD_ONLY, RUN_ON_TARGET, "auto", "darwin/arm64", [
        "darwin/arm64: cannot build (stage #0 runs RUN on darwin/arm64 at line 2, "
        "but Linux builders can only copy files into macOS images)"]),
    ("no emulator for the architecture", AMD_ONLY, RUN_ON_TARGET, "auto", "linux/mipsle", [
        "linux/mipsle: cannot build (Dockerfile runs RUN on the target platform, "
        "and no emulator exists for linux/mipsle)"]),
    ("nothing requested: the builder's own", AMD_ARM, RUN_ON_TARGET, "auto", "", [
        "linux/amd64: native on node-a (amd64 node)"]),
]


@pytest.mark.parametrize(("cluster", "dockerfile", "mode", "platforms", "expected"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_plan_lines(cluster: Cluster, dockerfile: Dockerfile, mode: Mode, platforms: str,
                    expected: list[str]) -> None:
    request = PlanRequest(_platforms(platforms) if platforms else (), dockerfile, mode)
    assert list(plan_build(request, cluster).lines()) == expected


def test_groups_one_solve_per_builder_default_first() -> None:
    plan = plan_build(PlanRequest(_platforms(SIX), CROSS), AMD_ARM)
    groups = plan.groups()
    assert [(g.builder, g.default, [str(p) for p in g.platforms], g.nodes) for g in groups] == [
        ("kb", True, ["linux/386", "linux/amd64", "linux/arm/v6", "linux/arm/v7", "windows/amd64"],
         ("node-a",)),
        ("kb-arm64", False, ["linux/arm64"], ("node-b", "node-c"))]
    assert dict(groups[1].node_selector) == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}
    assert dict(groups[0].node_selector) == {}
    assert not any(g.needs_emulator_install for g in groups)
    assert plan.needs_merge
    assert not plan_build(PlanRequest(_platforms(SIX), CROSS), AMD_ONLY).needs_merge


def test_emulator_install_flag_follows_the_reported_platforms() -> None:
    request = PlanRequest(_platforms("linux/arm64,linux/arm/v7,linux/s390x"), RUN_ON_TARGET)
    missing = plan_build(request, AMD_ONLY)
    assert [p.needs_emulator_install for p in missing.platforms] == [True, True, True]
    (group,) = missing.groups()
    assert [str(p) for p in group.emulated] == ["linux/arm/v7", "linux/arm64", "linux/s390x"]
    assert group.needs_emulator_install
    installed = plan_build(request, AMD_QEMU)
    assert [p.needs_emulator_install for p in installed.platforms] == [False, False, True]
    unknown = plan_build(request, AMD_ARM)
    assert [p.strategy for p in unknown.platforms] == ["native", "qemu", "qemu"]
    assert [p.needs_emulator_install for p in unknown.platforms] == [False, False, False]


def test_native_builder_for_arm_nodes_is_named_by_variant() -> None:
    cluster = Cluster(DefaultBuilder("kb", AMD64, "node-a"),
                      (Node("node-a", AMD64), Node("pi", parse_platform("linux/arm/v7"))))
    plan = plan_build(PlanRequest(_platforms("linux/arm/v6,linux/arm/v7"), RUN_ON_TARGET), cluster)
    assert plan.lines() == ("linux/arm/v6: native on pi (arm node)", "linux/arm/v7: native on pi (arm node)")
    (group,) = [g for g in plan.groups() if not g.default]
    assert group.builder == "kb-arm-v7" and len(group.platforms) == 2


def test_native_plan_on_a_new_builder_knows_its_foreign_runs() -> None:
    plan = plan_build(PlanRequest(_platforms("linux/arm64"), FIXED_ARM_TOOL), AMD_ARM)
    (entry,) = plan.platforms
    assert (entry.strategy, entry.emulated, entry.needs_emulator_install) == ("native", (), False)
    dockerfile = parse_dockerfile("FROM --platform=linux/s390x alpine\nRUN x\n")
    (entry,) = plan_build(PlanRequest(_platforms("linux/arm64"), dockerfile), AMD_ARM).platforms
    assert entry.emulated == (parse_platform("linux/s390x"),)
    assert entry.needs_emulator_install


def test_build_args_and_target_reach_the_analysis() -> None:
    dockerfile = parse_dockerfile("ARG TOOL=$BUILDPLATFORM\nFROM --platform=$TOOL alpine AS t\nRUN x\n"
                                  "FROM alpine AS slow\nRUN y\nFROM scratch\nCOPY --from=t / /\n")
    fast = PlanRequest(_platforms("linux/arm64"), dockerfile)
    assert plan_build(fast, AMD_ONLY).platforms[0].strategy == "cross"
    pinned = PlanRequest(_platforms("linux/arm64"), dockerfile, build_args={"TOOL": "linux/arm64"})
    assert plan_build(pinned, AMD_ONLY).platforms[0].strategy == "qemu"
    slow = PlanRequest(_platforms("linux/arm64"), dockerfile, target="slow")
    assert plan_build(slow, AMD_ONLY).platforms[0].strategy == "qemu"


def test_check_raises_one_usage_error_for_every_failure() -> None:
    plan = plan_build(PlanRequest(_platforms("linux/arm64,windows/amd64,linux/amd64"), WINDOWS_RUN,
                                  "native"), AMD_ONLY)
    assert [type(e) for e in plan.entries] == [PlanFailure, PlanFailure, PlatformPlan]
    with pytest.raises(PlanError) as err:
        plan.check()
    assert err.value.exit_code == ExitCode.USAGE
    assert err.value.message.startswith("cannot build linux/arm64: --mode native: no arm64 nodes; "
                                        "windows/amd64: stage #0 runs RUN")
    assert err.value.hint == "use --mode auto to cross-compile or emulate instead"
    plan_build(PlanRequest(_platforms("linux/amd64"), CROSS), AMD_ONLY).check()


def test_nodes_without_labels_and_unknown_nodes() -> None:
    cluster = Cluster(DefaultBuilder("kb", AMD64), (Node("odd", None),))
    plan = plan_build(PlanRequest(_platforms("linux/arm64"), RUN_ON_TARGET, "native"), cluster)
    assert plan.lines() == ("linux/arm64: cannot build (--mode native: no arm64 nodes)",)
    bare = Cluster(DefaultBuilder("kb", AMD64))
    plan = plan_build(PlanRequest(_platforms("linux/arm64"), RUN_ON_TARGET), bare)
    assert plan.lines() == ("linux/arm64: qemu on builder kb (Dockerfile runs RUN on the target platform)",)


def test_builder_name() -> None:
    assert builder_name("kb", ARM64) == "kb-arm64"
    assert builder_name("kb", parse_platform("linux/arm/v6")) == "kb-arm-v6"


def test_facts_from_node_labels_and_list_workers() -> None:
    node = Node.from_labels("pi", {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm"},
                            schedulable=False)
    assert node == Node("pi", parse_platform("linux/arm/v7"), True, False)

    @dataclass(frozen=True)
    class Reported:
        os: str
        architecture: str
        variant: str = ""

    builder = DefaultBuilder.from_workers("kb", "node-a", [Reported("linux", "arm64"),
                                                            Reported("linux", "arm", "v7")], AMD64)
    assert builder == DefaultBuilder("kb", ARM64, "node-a", (ARM64, parse_platform("linux/arm/v7")))
    assert DefaultBuilder.from_workers("kb", "", [], AMD64) == DefaultBuilder("kb", AMD64, "", None)

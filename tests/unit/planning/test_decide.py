"""When the planner runs and what it decides (kubectl_build.planning.decide)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubectl_build.dockerfile.analysis import parse_dockerfile
from kubectl_build.errors import ExitCode
from kubectl_build.kube.nodes import Node
from kubectl_build.options.build import parse_platform, parse_platforms
from kubectl_build.planning.decide import (
    candidate_platforms,
    decide,
    foreign_platforms,
    landing_platforms,
    plan_ahead,
    plan_request,
    split_blocker,
    wants_nodes,
)
from kubectl_build.planning.planner import PlanError, PlanRequest
from tests.unit.planning.samples import AMD64, ARM64, BUILDER, CROSS, NODES, RUN_ON_TARGET, options_for

# ---------------------------------------------------------------------------- when to plan


def test_foreign_platforms_are_linux_ones_the_builder_cannot_run() -> None:
    wanted = parse_platforms(["linux/amd64,linux/386,linux/arm64,windows/amd64,linux/s390x"], {})
    # arm64 is reported (emulated), but reported is not native: only amd64 and its 386 companion
    assert [str(p) for p in foreign_platforms(wanted, BUILDER)] == ["linux/arm64", "linux/s390x"]


def test_nodes_are_asked_only_when_a_foreign_platform_could_go_native(tmp_path: Path) -> None:
    assert not wants_nodes(options_for(tmp_path, platform=("linux/amd64,linux/386",)), BUILDER)
    assert not wants_nodes(options_for(tmp_path, platform=("windows/amd64",)), BUILDER)
    assert wants_nodes(options_for(tmp_path, platform=("linux/arm64",)), BUILDER)
    assert wants_nodes(options_for(tmp_path, platform=("linux/arm64",), mode="native"), BUILDER)
    assert not wants_nodes(options_for(tmp_path, platform=("linux/arm64",), mode="cross"), BUILDER)
    assert not wants_nodes(options_for(tmp_path, platform=("linux/arm64",), mode="qemu"), BUILDER)


@pytest.mark.parametrize(("flags", "blocker"), [
    ({"tag": ("r.example.com/a:1",), "push": True}, None),
    ({"tag": ("a:1",)}, None),  # loading into the nodes' store
    ({"output": ("type=cacheonly",)}, None),
    ({"output": ("type=local,dest=out",)}, "--output type=local is written by a single builder"),
    ({"output": ("type=oci,dest=out.tar",)}, "--output type=oci is written by a single builder"),
    ({"tag": ("r.example.com/a:1",), "push": True, "cache_to": ("type=registry,ref=r.example.com/c",)},
     "--cache-to is written by a single builder"),
])
def test_split_blocker(tmp_path: Path, flags: dict[str, object], blocker: str | None) -> None:
    assert split_blocker(options_for(tmp_path, **flags)) == blocker


def test_decide_keeps_an_unsplittable_build_on_the_default_builder(tmp_path: Path) -> None:
    options = options_for(tmp_path, platform=("linux/amd64,linux/arm64",))
    request = plan_request(options, parse_dockerfile(RUN_ON_TARGET), {})
    plan, kept = decide(request, BUILDER, NODES, None)
    assert plan.needs_merge and kept is None
    assert [g.builder for g in plan.groups()] == ["buildkit", "buildkit-arm64"]
    plan, kept = decide(request, BUILDER, NODES, "--output type=local is written by a single builder")
    assert not plan.needs_merge and kept is not None
    assert [p.strategy for p in plan.platforms] == ["native", "qemu"]


WINDOWS_RUN = "FROM mcr.microsoft.com/windows/nanoserver:ltsc2022\nRUN echo hi\n"


def _request(tmp_path: Path, dockerfile: str = RUN_ON_TARGET, **flags: object) -> PlanRequest:
    return plan_request(options_for(tmp_path, dockerfile, **flags), parse_dockerfile(dockerfile), {})


def test_landing_platforms_are_those_of_usable_linux_nodes_most_common_first() -> None:
    windows = parse_platform("windows/amd64")
    nodes = (Node("a", ARM64), Node("b", AMD64), Node("c", AMD64), Node("d", ARM64, ready=False),
             Node("e", ARM64, schedulable=False), Node("f", windows), Node("g", None))
    assert landing_platforms(nodes) == (AMD64, ARM64)
    assert landing_platforms(()) == ()


def test_candidates_fall_back_to_guesses_when_no_node_is_known() -> None:
    assert candidate_platforms(NODES[:1], (ARM64,), ARM64) == (AMD64,)
    s390x = parse_platform("linux/s390x")
    assert candidate_platforms((), (s390x, parse_platform("windows/amd64")), ARM64) == (
        ARM64, AMD64, s390x)


def test_refused_ahead_on_the_nodes_platform(tmp_path: Path) -> None:
    request = _request(tmp_path, platform=("linux/arm64",), mode="cross")
    with pytest.raises(PlanError) as info:
        plan_ahead(request, "buildkit", NODES[:1], None, AMD64)
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.message.startswith("cannot build linux/arm64: --mode cross")


def test_windows_run_is_refused_ahead_whatever_the_nodes(tmp_path: Path) -> None:
    request = _request(tmp_path, WINDOWS_RUN, platform=("windows/amd64",))
    for nodes in (NODES[:1], NODES, ()):
        with pytest.raises(PlanError) as info:
            plan_ahead(request, "buildkit", nodes, None, AMD64)
        assert "Linux builders can only copy files into Windows images" in info.value.message


def test_unknown_nodes_refuse_only_what_no_builder_could_build(tmp_path: Path) -> None:
    # an arm64 builder would build it natively: not refused before the builder exists
    ahead = plan_ahead(_request(tmp_path, platform=("linux/arm64",), mode="cross"), "buildkit",
                       (), None, AMD64)
    assert ahead.builder.platform == ARM64 and not ahead.plan.failures
    assert ahead.needs_workers("node-a")  # where it landed is unknown: ask it
    # no single builder runs both natively, and cross is asked for
    with pytest.raises(PlanError):
        plan_ahead(_request(tmp_path, platform=("linux/arm64,linux/amd64",), mode="cross"),
                   "buildkit", (), None, AMD64)


def test_mixed_nodes_refuse_only_when_every_landing_platform_does(tmp_path: Path) -> None:
    ahead = plan_ahead(_request(tmp_path, platform=("linux/arm64",), mode="qemu"), "buildkit",
                       NODES, None, AMD64)
    assert (ahead.builder.platform, ahead.plan.lines()) == (AMD64, (
        "linux/arm64: qemu on builder buildkit (--mode qemu; Dockerfile runs RUN on the target "
        "platform)",))
    assert ahead.needs_workers("node-a")  # emulation: what the builder reports decides


def test_native_plan_ahead_holds_without_list_workers(tmp_path: Path) -> None:
    ahead = plan_ahead(_request(tmp_path, platform=("linux/amd64",)), "buildkit", NODES[:1], None,
                       ARM64)
    assert not ahead.needs_workers("node-a")
    assert ahead.needs_workers("elsewhere")  # landed on a node of unknown platform
    cross = plan_ahead(_request(tmp_path, CROSS, platform=("linux/amd64,linux/arm64",)),
                       "buildkit", NODES[:1], None, AMD64)
    assert [p.strategy for p in cross.plan.platforms] == ["native", "cross"]
    assert not cross.needs_workers("node-a")  # no report makes an amd64 worker run arm64
    i386 = plan_ahead(_request(tmp_path, CROSS, platform=("linux/386",)), "buildkit", NODES[:1],
                      None, AMD64)
    assert i386.needs_workers("node-a")  # the 32-bit companion is native when reported

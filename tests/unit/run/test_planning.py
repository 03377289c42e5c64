"""Making the plan from the builder and the nodes, remembered or read (kubectl_build.run.planning)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from kubectl_build.console import Console
from kubectl_build.context.sources import LocalSources
from kubectl_build.errors import ExitCode
from kubectl_build.kube.nodes import Node
from kubectl_build.planning.planner import DefaultBuilder, PlanError
from kubectl_build.run.planning import PlanReaders, make_plan, make_plan_remembering, show_plan
from tests.unit.planning.samples import (
    AMD64,
    BUILDER,
    CROSS,
    NODES,
    RUN_ON_TARGET,
    local_sources,
    options_for,
)


class _Calls:
    def __init__(self, nodes: tuple[Node, ...] = NODES, node: str = "node-a") -> None:
        self.builder = 0
        self.nodes = 0
        self._nodes, self._node = nodes, node

    def read_builder(self) -> DefaultBuilder:
        self.builder += 1
        return DefaultBuilder("buildkit", AMD64, "", BUILDER.reported)

    def read_nodes(self) -> tuple[tuple[Node, ...], str]:
        self.nodes += 1
        return self._nodes, self._node


def _make(tmp_path: Path, calls: _Calls, dockerfile: str = RUN_ON_TARGET, **flags: object
          ) -> tuple[object, str]:
    out = io.StringIO()
    console = Console(stdout=io.StringIO(), stderr=out, debug=True)
    plan = make_plan(options_for(tmp_path, dockerfile, **flags), local_sources(tmp_path), {},
                     PlanReaders(calls.read_builder, calls.read_nodes), console)
    return plan, out.getvalue()


def test_no_platform_means_no_plan_and_no_calls(tmp_path: Path) -> None:
    calls = _Calls()
    assert _make(tmp_path, calls)[0] is None
    assert (calls.builder, calls.nodes) == (0, 0)


def test_native_platforms_need_no_node_listing(tmp_path: Path) -> None:
    calls = _Calls()
    plan, _ = _make(tmp_path, calls, platform=("linux/amd64,linux/386",))
    assert (calls.builder, calls.nodes) == (1, 0)
    assert [line.split(" (")[0] for line in plan.lines()] == [  # type: ignore[attr-defined]
        "linux/amd64: native on builder buildkit", "linux/386: native on builder buildkit"]


def test_foreign_platform_lists_nodes_and_names_the_builder_node(tmp_path: Path) -> None:
    calls = _Calls()
    plan, _ = _make(tmp_path, calls, platform=("linux/amd64,linux/arm64",))
    assert calls.nodes == 1
    assert plan.lines() == (  # type: ignore[attr-defined]
        "linux/amd64: native on node-a (amd64 node)",
        "linux/arm64: native on node-b (arm64 node)")


def test_single_node_cluster_plans_qemu_and_cross(tmp_path: Path) -> None:
    calls = _Calls(nodes=(Node("node-a", AMD64),))
    plan, _ = _make(tmp_path, calls, platform=("linux/arm64",))
    assert plan.lines() == (  # type: ignore[attr-defined]
        "linux/arm64: qemu on node-a (no arm64 nodes; Dockerfile runs RUN on the target platform)",)
    plan, _ = _make(tmp_path, calls, CROSS, platform=("linux/arm64",))
    assert plan.lines() == (  # type: ignore[attr-defined]
        "linux/arm64: cross on node-a (every RUN runs on the build platform)",)


def test_mode_cross_with_run_on_target_is_a_usage_error_before_anything(tmp_path: Path) -> None:
    calls = _Calls()
    with pytest.raises(PlanError) as info:
        _make(tmp_path, calls, platform=("linux/arm64,linux/arm/v7",), mode="cross")
    assert info.value.exit_code == ExitCode.USAGE
    assert "linux/arm64" in info.value.message and "linux/arm/v7" in info.value.message
    assert calls.nodes == 0  # cross never looks at nodes


def test_unsplittable_outputs_are_said_and_stay_on_one_builder(tmp_path: Path) -> None:
    plan, err = _make(tmp_path, _Calls(), platform=("linux/amd64,linux/arm64",),
                      output=("type=local,dest=out",))
    assert not plan.needs_merge  # type: ignore[attr-defined]
    assert "building every platform on builder buildkit: --output type=local" in err


def test_remote_or_unparsable_dockerfile_falls_back_to_one_solve(tmp_path: Path) -> None:
    calls = _Calls()
    options = options_for(tmp_path, platform=("linux/arm64",))
    out = io.StringIO()
    console = Console(stdout=io.StringIO(), stderr=out, debug=True)
    remote = LocalSources(None, None, "Dockerfile", "https://example.com/repo.git")
    readers = PlanReaders(calls.read_builder, calls.read_nodes)
    assert make_plan(options, remote, {}, readers, console) is None
    assert "not a local file" in out.getvalue()
    (tmp_path / "Dockerfile").write_text("RUN nothing-before-from\n")
    assert make_plan(options, local_sources(tmp_path), {}, readers, console) is None
    assert "planner skipped" in out.getvalue()
    assert calls.builder == 0


def _remembering(tmp_path: Path, calls: _Calls, known: tuple[Node, ...] | None,
                 dockerfile: str = RUN_ON_TARGET, **flags: object) -> tuple[object, str]:
    out = io.StringIO()
    console = Console(stdout=io.StringIO(), stderr=out, debug=True)
    readers = PlanReaders(calls.read_builder, calls.read_nodes,
                          lambda: None if known is None else (known, "node-a"))
    plan = make_plan_remembering(options_for(tmp_path, dockerfile, **flags), local_sources(tmp_path), {},
                                 readers, console)
    return plan, out.getvalue()


def test_remembered_nodes_stand_for_a_plan_on_the_default_builder(tmp_path: Path) -> None:
    # Single-node cluster remembered: qemu/cross on this builder, no listing at all.
    calls = _Calls(nodes=NODES)  # what a listing would say now: an arm64 node joined
    plan, err = _remembering(tmp_path, calls, (Node("node-a", AMD64),),
                             platform=("linux/amd64,linux/arm64",))
    assert calls.nodes == 0 and "no API call" in err
    assert [g.builder for g in plan.groups()] == ["buildkit"]  # type: ignore[attr-defined]


def test_remembered_nodes_that_send_a_platform_elsewhere_are_listed_again(tmp_path: Path) -> None:
    # The remembered arm64 node is gone: the plan must not create a builder for it.
    calls = _Calls(nodes=(Node("node-a", AMD64),))
    plan, err = _remembering(tmp_path, calls, NODES, platform=("linux/amd64,linux/arm64",))
    assert calls.nodes == 1 and "listing the nodes" in err
    assert plan.lines() == (  # type: ignore[attr-defined]
        "linux/amd64: native on node-a (amd64 node)",
        "linux/arm64: qemu on node-a (no arm64 nodes; Dockerfile runs RUN on the target platform)")


def test_a_refusal_by_remembered_nodes_is_checked_with_a_fresh_listing(tmp_path: Path) -> None:
    # --mode native with no arm64 node remembered, but one joined since: it builds.
    calls = _Calls(nodes=NODES)
    plan, err = _remembering(tmp_path, calls, (Node("node-a", AMD64),),
                             platform=("linux/arm64",), mode="native")
    assert calls.nodes == 1 and "refuse the plan" in err
    assert plan.lines() == ("linux/arm64: native on node-b (arm64 node)",)  # type: ignore[attr-defined]
    with pytest.raises(PlanError):  # and a refusal the fresh listing confirms stands
        _remembering(tmp_path, _Calls(nodes=(Node("node-a", AMD64),)), (Node("node-a", AMD64),),
                     platform=("linux/arm64",), mode="native")


def test_nothing_remembered_lists_once(tmp_path: Path) -> None:
    calls = _Calls()
    plan, err = _remembering(tmp_path, calls, None, platform=("linux/amd64,linux/arm64",))
    assert calls.nodes == 1 and "no API call" not in err
    assert [g.builder for g in plan.groups()] == ["buildkit", "buildkit-arm64"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("progress", "shown"), [("plain", True), ("tty", True), ("quiet", False),
                                                  ("rawjson", False)])
def test_plan_lines_only_where_a_human_reads(tmp_path: Path, progress: str, shown: bool) -> None:
    plan, _ = _make(tmp_path, _Calls(), platform=("linux/amd64",))
    out = io.StringIO()
    show_plan(plan, Console(stdout=io.StringIO(), stderr=out), progress)  # type: ignore[arg-type]
    assert (out.getvalue() == "plan: linux/amd64: native on builder buildkit (amd64 node)\n") is shown
    assert shown or out.getvalue() == ""


# ---------------------------------------------------------------------------- planning ahead

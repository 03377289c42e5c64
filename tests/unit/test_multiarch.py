"""Unit tests for the multi-builder orchestration's decisions (kubectl_build.run.multiarch)."""

from __future__ import annotations

import _thread
import base64
import io
import json
import threading
import time
from pathlib import Path

import pytest

from kubectl_build.console import Console
from kubectl_build.context.sources import LocalSources
from kubectl_build.errors import BuildFailedError, BuildInterruptedError, ExitCode, RegistryError
from kubectl_build.kube.nodes import Node
from kubectl_build.options.build import (
    BuildFlags,
    BuildOptions,
    build_options,
    parse_platform,
    parse_platforms,
)
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
from kubectl_build.planning.groups import BuilderGroup, group_label, group_options, pushes
from kubectl_build.planning.planner import DefaultBuilder, PlanError, PlanRequest
from kubectl_build.registry.client import OCI_INDEX, Manifest
from kubectl_build.registry.merge import is_loopback, merged_response, pushed_digest, registry_ca
from kubectl_build.run import results
from kubectl_build.run.jobs import Job as Task
from kubectl_build.run.jobs import JobCancelledError as GroupCancelledError
from kubectl_build.run.jobs import run_jobs as run_parallel
from kubectl_build.run.planning import PlanReaders, make_plan, make_plan_remembering, show_plan

AMD64, ARM64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")
BUILDER = DefaultBuilder("buildkit", AMD64, "node-a",
                         parse_platforms(["linux/amd64,linux/386,linux/arm64,linux/arm/v7"], {}))
NODES = (Node("node-a", AMD64), Node("node-b", ARM64))
RUN_ON_TARGET = "FROM busybox\nRUN uname -m > /arch\n"
CROSS = ("FROM --platform=$BUILDPLATFORM golang AS build\nRUN go build -o /out/hello .\n"
         "FROM scratch\nCOPY --from=build /out/hello /hello\n")


def _options(tmp_path: Path, dockerfile: str = RUN_ON_TARGET, **flags: object) -> BuildOptions:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return build_options(BuildFlags(context=str(tmp_path), **flags), {})  # type: ignore[arg-type]


def _local(tmp_path: Path) -> LocalSources:
    return LocalSources(str(tmp_path), str(tmp_path), "Dockerfile")


def _group(builder: str, platforms: str, *, default: bool = False) -> BuilderGroup:
    return BuilderGroup(builder, default, parse_platforms([platforms], {}), ("node-a",), {}, (), False)


# ---------------------------------------------------------------------------- when to plan


def test_foreign_platforms_are_linux_ones_the_builder_cannot_run() -> None:
    wanted = parse_platforms(["linux/amd64,linux/386,linux/arm64,windows/amd64,linux/s390x"], {})
    # arm64 is reported (emulated), but reported is not native: only amd64 and its 386 companion
    assert [str(p) for p in foreign_platforms(wanted, BUILDER)] == ["linux/arm64", "linux/s390x"]


def test_nodes_are_asked_only_when_a_foreign_platform_could_go_native(tmp_path: Path) -> None:
    assert not wants_nodes(_options(tmp_path, platform=("linux/amd64,linux/386",)), BUILDER)
    assert not wants_nodes(_options(tmp_path, platform=("windows/amd64",)), BUILDER)
    assert wants_nodes(_options(tmp_path, platform=("linux/arm64",)), BUILDER)
    assert wants_nodes(_options(tmp_path, platform=("linux/arm64",), mode="native"), BUILDER)
    assert not wants_nodes(_options(tmp_path, platform=("linux/arm64",), mode="cross"), BUILDER)
    assert not wants_nodes(_options(tmp_path, platform=("linux/arm64",), mode="qemu"), BUILDER)


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
    assert split_blocker(_options(tmp_path, **flags)) == blocker


def test_decide_keeps_an_unsplittable_build_on_the_default_builder(tmp_path: Path) -> None:
    from kubectl_build.dockerfile.analysis import parse_dockerfile

    options = _options(tmp_path, platform=("linux/amd64,linux/arm64",))
    request = plan_request(options, parse_dockerfile(RUN_ON_TARGET), {})
    plan, kept = decide(request, BUILDER, NODES, None)
    assert plan.needs_merge and kept is None
    assert [g.builder for g in plan.groups()] == ["buildkit", "buildkit-arm64"]
    plan, kept = decide(request, BUILDER, NODES, "--output type=local is written by a single builder")
    assert not plan.needs_merge and kept is not None
    assert [p.strategy for p in plan.platforms] == ["native", "qemu"]


# ---------------------------------------------------------------------------- make_plan


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
    plan = make_plan(_options(tmp_path, dockerfile, **flags), _local(tmp_path), {},
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
    options = _options(tmp_path, platform=("linux/arm64",))
    out = io.StringIO()
    console = Console(stdout=io.StringIO(), stderr=out, debug=True)
    remote = LocalSources(None, None, "Dockerfile", "https://example.com/repo.git")
    readers = PlanReaders(calls.read_builder, calls.read_nodes)
    assert make_plan(options, remote, {}, readers, console) is None
    assert "not a local file" in out.getvalue()
    (tmp_path / "Dockerfile").write_text("RUN nothing-before-from\n")
    assert make_plan(options, _local(tmp_path), {}, readers, console) is None
    assert "planner skipped" in out.getvalue()
    assert calls.builder == 0


def _remembering(tmp_path: Path, calls: _Calls, known: tuple[Node, ...] | None,
                 dockerfile: str = RUN_ON_TARGET, **flags: object) -> tuple[object, str]:
    out = io.StringIO()
    console = Console(stdout=io.StringIO(), stderr=out, debug=True)
    readers = PlanReaders(calls.read_builder, calls.read_nodes,
                          lambda: None if known is None else (known, "node-a"))
    plan = make_plan_remembering(_options(tmp_path, dockerfile, **flags), _local(tmp_path), {},
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


def test_plan_request_carries_mode_args_target(tmp_path: Path) -> None:
    from kubectl_build.dockerfile.analysis import parse_dockerfile

    options = _options(tmp_path, platform=("linux/arm64",), mode="qemu", target="x")
    request = plan_request(options, parse_dockerfile(RUN_ON_TARGET), {"A": "1"})
    assert isinstance(request, PlanRequest)
    assert (request.mode, dict(request.build_args), request.target) == ("qemu", {"A": "1"}, "x")


@pytest.mark.parametrize(("progress", "shown"), [("plain", True), ("tty", True), ("quiet", False),
                                                  ("rawjson", False)])
def test_plan_lines_only_where_a_human_reads(tmp_path: Path, progress: str, shown: bool) -> None:
    plan, _ = _make(tmp_path, _Calls(), platform=("linux/amd64",))
    out = io.StringIO()
    show_plan(plan, Console(stdout=io.StringIO(), stderr=out), progress)  # type: ignore[arg-type]
    assert (out.getvalue() == "plan: linux/amd64: native on builder buildkit (amd64 node)\n") is shown
    assert shown or out.getvalue() == ""


# ---------------------------------------------------------------------------- planning ahead

WINDOWS_RUN = "FROM mcr.microsoft.com/windows/nanoserver:ltsc2022\nRUN echo hi\n"


def _request(tmp_path: Path, dockerfile: str = RUN_ON_TARGET, **flags: object) -> PlanRequest:
    from kubectl_build.dockerfile.analysis import parse_dockerfile

    return plan_request(_options(tmp_path, dockerfile, **flags), parse_dockerfile(dockerfile), {})


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


# ---------------------------------------------------------------------------- per-group options


def test_group_options_push_by_digest_without_tags(tmp_path: Path) -> None:
    options = _options(tmp_path, tag=("r.example.com/team/app:1", "r.example.com/team/app:latest",
                                      "other.example.com/app:1"), push=True,
                       platform=("linux/amd64,linux/arm64",), iidfile="iid", metadata_file="m.json")
    assert pushes(options)
    group = _group("buildkit-arm64", "linux/arm64")
    derived = group_options(options, group, by_digest=True)
    assert derived.platforms == (ARM64,)
    assert (derived.iidfile, derived.metadata_file) == (None, None)
    [out] = derived.outputs
    assert dict(out.attrs) == {"name": "r.example.com/team/app,other.example.com/app",
                               "push": "true", "push-by-digest": "true"}
    # one builder: the outputs are kept as they are
    same = group_options(options, group, by_digest=False)
    assert same.outputs == options.outputs


def test_group_options_take_the_builders_own_load_outputs(tmp_path: Path) -> None:
    from kubectl_build.run.cluster import load_outputs

    options = _options(tmp_path, tag=("app:dev",), platform=("linux/amd64,linux/arm64",))
    assert not pushes(options)
    outputs = load_outputs(options, "containerd", "buildkit-arm64")
    derived = group_options(options, _group("buildkit-arm64", "linux/arm64"), by_digest=False,
                            outputs=outputs)
    assert derived.outputs == outputs and derived.platforms == (ARM64,)


def test_group_label_adds_the_platform_only_for_single_platform_solves() -> None:
    assert group_label(_group("buildkit-arm64", "linux/arm64")) == "buildkit-arm64 linux/arm64"
    assert group_label(_group("buildkit", "linux/amd64,linux/arm/v7")) == "buildkit"


def test_pushed_digest_and_merged_response() -> None:
    assert pushed_digest({"containerimage.digest": "sha256:" + "a" * 64}, "x") == "sha256:" + "a" * 64
    with pytest.raises(RegistryError) as info:
        pushed_digest({}, "builder b (linux/arm64)")
    assert "builder b (linux/arm64) reported no pushed digest" in info.value.message
    index = Manifest(OCI_INDEX, b'{"schemaVersion":2}', "sha256:" + "b" * 64)
    response = merged_response(index, ["r.example.com/a:1", "r.example.com/a:2"])
    assert results.image_id(response) == index.digest
    meta = results.metadata(response)
    assert meta["containerimage.descriptor"] == {"mediaType": OCI_INDEX, "digest": index.digest,
                                                 "size": len(index.body)}
    assert meta["image.name"] == "r.example.com/a:1,r.example.com/a:2"
    assert json.loads(base64.b64decode(response["containerimage.descriptor"]))["size"] == 19


# ---------------------------------------------------------------------------- run_parallel


def test_run_parallel_returns_results_in_task_order() -> None:
    def slow(value: int, delay: float) -> Task[int]:
        def run(cancel: threading.Event) -> int:
            time.sleep(delay)
            return value
        return Task(f"t{value}", run)

    assert run_parallel([slow(1, 0.2), slow(2, 0.0), slow(3, 0.1)]) == [1, 2, 3]


def test_first_failure_cancels_the_others_and_names_its_builder() -> None:
    cancelled: list[str] = []

    def waits(name: str) -> Task[str]:
        def run(cancel: threading.Event) -> str:
            if not cancel.wait(10):
                return name
            cancelled.append(name)
            raise GroupCancelledError("cancelled")
        return Task(name, run)

    def fails(cancel: threading.Event) -> str:
        time.sleep(0.1)
        raise BuildFailedError("process did not complete successfully", "see the log")

    started = time.monotonic()
    with pytest.raises(BuildFailedError) as info:
        run_parallel([waits("builder a (linux/amd64)"),
                      Task("builder b (linux/arm64)", fails), waits("builder c (linux/s390x)")])
    assert time.monotonic() - started < 5
    assert info.value.one_line() == ("builder b (linux/arm64): process did not complete successfully"
                                     "; see the log")
    assert sorted(cancelled) == ["builder a (linux/amd64)", "builder c (linux/s390x)"]


def test_single_task_runs_on_the_calling_thread_and_names_itself() -> None:
    def run(cancel: threading.Event) -> str:
        if threading.current_thread() is not threading.main_thread():
            return "other thread"
        raise BuildFailedError("boom")

    with pytest.raises(BuildFailedError) as info:
        run_parallel([Task("builder b (linux/arm64)", run)])
    assert info.value.one_line() == "builder b (linux/arm64): boom"


def test_ctrl_c_cancels_every_builder_and_exits_130() -> None:
    seen: list[bool] = []
    other_started = threading.Event()

    def interrupts(cancel: threading.Event) -> None:
        other_started.wait(10)
        _thread.interrupt_main()
        seen.append(cancel.wait(10))

    def waits(cancel: threading.Event) -> None:
        other_started.set()
        seen.append(cancel.wait(10))

    with pytest.raises(BuildInterruptedError) as info:
        run_parallel([Task("a", interrupts), Task("b", waits)])
    assert info.value.exit_code == ExitCode.INTERRUPTED
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == [True, True]


# ---------------------------------------------------------------------------- registry access


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost:5000", True), ("127.0.0.1:5443", True), ("127.0.0.1", True), ("[::1]:5000", True),
    ("reg.example.com", False), ("10.0.0.1:5000", False), ("docker.io", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_registry_ca_from_docker_certs_d(tmp_path: Path) -> None:
    folder = tmp_path / "certs.d" / "reg.example.com:5443"
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_text("x")
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert registry_ca("reg.example.com:5443", env) == str(folder / "ca.crt")
    assert registry_ca("other.example.com", env) is None

"""ProgressModel: folding status messages into steps, events and the failure report."""

from __future__ import annotations

import pytest

from kubectl_build._proto.control_pb2 import StatusResponse
from kubectl_build.progress.model import (
    LogAdded,
    ProgressModel,
    StepChanged,
    StepState,
    TransferChanged,
    WarningAdded,
    is_canceled,
    parse_exit_code,
)
from tests.unit.progress.progress_streams import (
    D_COPY,
    D_EXIT,
    D_FROM,
    D_MAKE,
    EXIT_ERROR,
    N_COPY,
    N_MAKE,
    T0,
    failing_build,
    log,
    multistep_build,
    resp,
    status,
    transfer_build,
    vertex,
    warning_build,
)


def fold(messages: list[StatusResponse]) -> ProgressModel:
    model = ProgressModel()
    for message in messages:
        model.apply(message)
    return model


def test_parse_exit_code() -> None:
    assert parse_exit_code(EXIT_ERROR) == 3
    assert parse_exit_code("failed to compute cache key: not found") is None
    nested = "executor failed running [/bin/sh -c false]: exit code: 1: exit code: 127"
    assert parse_exit_code(nested) == 127


def test_is_canceled() -> None:
    assert is_canceled("context canceled")
    assert is_canceled("failed to copy: context canceled")
    assert not is_canceled(EXIT_ERROR)


def test_steps_numbered_in_order_of_first_mention() -> None:
    model = fold(multistep_build())
    assert [s.number for s in model.steps] == [1, 2, 3, 4, 5, 6]
    step = model.step(D_MAKE)
    assert step is not None
    assert (step.number, step.name, step.state) == (4, N_MAKE, StepState.DONE)
    assert step.duration() == pytest.approx(1.7)


def test_running_and_pending_states() -> None:
    model = ProgressModel()
    model.apply(resp([vertex(D_MAKE, N_MAKE), vertex(D_COPY, N_COPY, started=1.0)]))
    assert model.step(D_MAKE).state is StepState.PENDING  # type: ignore[union-attr]
    copy = model.step(D_COPY)
    assert copy is not None
    assert copy.state is StepState.RUNNING
    assert copy.duration(T0 + 3.5) == pytest.approx(2.5)
    assert copy.duration() is None


def test_repeated_vertex_snapshot_emits_nothing() -> None:
    model = ProgressModel()
    done = resp([vertex(D_MAKE, N_MAKE, started=1.0, completed=2.0)])
    assert len(model.apply(done)) == 1
    assert model.apply(done) == []


def test_completion_comes_after_the_last_log_lines() -> None:
    model = ProgressModel()
    model.apply(resp([vertex(D_MAKE, N_MAKE, started=1.0)]))
    events = model.apply(
        resp(
            [vertex(D_MAKE, N_MAKE, started=1.0, completed=2.0)],
            logs=[log(D_MAKE, 1.5, b"last\nunterminated")],
        )
    )
    kinds = [type(e) for e in events]
    assert kinds == [LogAdded, LogAdded, StepChanged]
    texts = [e.line.text for e in events if isinstance(e, LogAdded)]
    assert texts == ["last", "unterminated"]


def test_restarted_vertex_runs_again() -> None:
    model = ProgressModel()
    model.apply(resp([vertex(D_MAKE, N_MAKE, started=1.0, completed=2.0)]))
    model.apply(resp([vertex(D_MAKE, N_MAKE, started=3.0)]))
    step = model.step(D_MAKE)
    assert step is not None
    assert step.state is StepState.RUNNING
    assert step.completed is None


def test_log_before_vertex_creates_the_step() -> None:
    model = ProgressModel()
    model.apply(resp(logs=[log(D_MAKE, 1.0, b"early\n")]))
    model.apply(resp([vertex(D_MAKE, N_MAKE, started=0.5)]))
    step = model.step(D_MAKE)
    assert step is not None
    assert (step.number, step.name, list(step.logs.lines)) == (1, N_MAKE, ["early"])


def test_transfers_tracked_per_id() -> None:
    model = fold(transfer_build())
    step = model.step(D_FROM)
    assert step is not None
    layer = step.transfers["sha256:" + "c" * 64]
    assert (layer.current, layer.total, layer.done) == (3_398_000, 3_398_000, True)
    assert layer.elapsed() == pytest.approx(1.6)
    assert len(step.transfers) == 3


def test_stale_transfer_update_after_completion_is_ignored() -> None:
    model = ProgressModel()
    model.apply(resp(statuses=[status(D_MAKE, "t", 2.0, current=10, started=1, completed=2)]))
    assert model.apply(resp(statuses=[status(D_MAKE, "t", 1.5, current=5, started=1)])) == []
    step = model.step(D_MAKE)
    assert step is not None
    assert step.transfers["t"].current == 10


def test_transfer_events() -> None:
    model = ProgressModel()
    events = model.apply(resp(statuses=[status(D_MAKE, "t", 1.0, current=1, total=9)]))
    assert [type(e) for e in events] == [TransferChanged]


def test_warnings_with_location() -> None:
    model = ProgressModel()
    events = []
    for message in warning_build():
        events += model.apply(message)
    assert sum(isinstance(e, WarningAdded) for e in events) == 2
    first, second = model.warnings
    assert first.short.startswith("JSONArgsRecommended")
    assert first.location() == "Dockerfile:4"
    assert first.detail == ("JSON arguments protect against unintended OS signal behavior",)
    assert second.location() == ""


def test_progress_group_name_kept() -> None:
    model = fold(warning_build())
    assert model.steps[-1].group == "exporting"


def test_failure_reports_the_real_error_not_the_cancelled_sibling() -> None:
    failure = fold(failing_build()).failure()
    assert failure is not None
    assert failure.name == "[4/4] RUN exit 3"
    assert failure.number == 4
    assert failure.exit_code == 3
    assert failure.error == EXIT_ERROR
    assert failure.logs == ("checking the frobnicator", "error: frobnicator missing")


def test_failure_falls_back_to_a_cancelled_step() -> None:
    model = ProgressModel()
    model.apply(resp([vertex(D_EXIT, "x", started=1, completed=2, error="context canceled")]))
    failure = model.failure()
    assert failure is not None
    assert failure.exit_code is None


def test_no_failure_on_success() -> None:
    assert fold(multistep_build()).failure() is None


def test_prefix_namespaces_digests_and_names() -> None:
    model = ProgressModel()
    model.apply(resp([vertex(D_MAKE, N_MAKE, started=1)]), prefix="linux/arm64")
    model.apply(resp([vertex(D_MAKE, N_MAKE, started=1)]), prefix="linux/amd64")
    model.apply(resp([vertex(D_COPY, "exporting to image", started=1)]), prefix="linux/amd64")
    names = [s.name for s in model.steps]
    assert names == [
        "[linux/arm64 2/4] RUN make",
        "[linux/amd64 2/4] RUN make",
        "[linux/amd64] exporting to image",
    ]
    assert model.step(D_MAKE, prefix="linux/arm64") is not None
    assert model.step(D_MAKE) is None


def test_time_span() -> None:
    assert ProgressModel().time_span() is None
    span = fold(multistep_build()).time_span()
    assert span == pytest.approx((T0, T0 + 3.9))

"""Streams recorded from a real buildkitd (via ``buildctl --progress=rawjson``).

The recorded build: a busybox stage, two stages running in parallel with output on
stdout and stderr (split lines, a carriage-return progress counter, colour escapes),
then a COPY of a 3 MB file and a RUN that exits 3 (``real-failing``); the same again
from the cache (``real-cached``); and a variant without the failing RUN, with two lint
warnings and an OCI export (``real-ok``). ``real-client-cached`` is the cached build
again, streamed through our own client (``kubectl build --progress=rawjson``): the daemon
sends the cached steps and the start of the failing RUN in one message.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from kubectl_build._proto.control_pb2 import StatusResponse
from kubectl_build.progress.model import ProgressModel, StepState
from kubectl_build.progress.plain import PlainDisplay
from kubectl_build.progress.rawjson import RawJsonDisplay
from kubectl_build.progress.tty import render_summary
from tests.unit.progress.buildctl_json import load
from tests.unit.progress.progress_streams import GOLDEN

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
REAL = ["real-cached", "real-client-cached", "real-failing", "real-ok"]
FAILING_EXIT = 'process "/bin/busybox sh -c echo bye && exit 3" did not complete successfully: exit code: 3'


def recorded(name: str) -> list[StatusResponse]:
    return load(GOLDEN / f"{name}.buildctl.jsonl")


def fold(name: str) -> ProgressModel:
    model = ProgressModel()
    for message in recorded(name):
        model.apply(message)
    return model


def _without_definition(line: str) -> object:
    # SourceInfo.definition is an LLB Definition we receive as opaque bytes and leave out.
    obj = json.loads(line)
    for warning in obj.get("warnings", []):
        warning.get("sourceInfo", {}).pop("definition", None)
    return obj


@pytest.mark.parametrize("name", REAL)
def test_rawjson_is_buildctls_line_for_line(name: str) -> None:
    out = io.StringIO()
    display = RawJsonDisplay(out)
    for message in recorded(name):
        display.update(message)
    ours = out.getvalue().splitlines()
    theirs = Path(GOLDEN / f"{name}.buildctl.jsonl").read_text().splitlines()
    assert len(ours) == len(theirs)
    for mine, buildctl in zip(ours, theirs, strict=True):
        if '"definition"' in buildctl:
            assert json.loads(mine) == _without_definition(buildctl)
        else:
            assert mine == buildctl


@pytest.mark.parametrize("name", REAL)
def test_plain_golden(name: str) -> None:
    out = io.StringIO()
    display = PlainDisplay(out)
    for message in recorded(name):
        display.update(message)
    display.finish(name == "real-ok")
    path = GOLDEN / f"{name}.plain.txt"
    if UPDATE:
        path.write_text(out.getvalue(), encoding="utf-8")
    assert out.getvalue() == path.read_text(encoding="utf-8")


def test_steps_numbered_in_start_order() -> None:
    steps = fold("real-failing").steps
    assert [s.number for s in steps] == list(range(1, 11))
    assert steps[0].name == "[internal] load build definition from Dockerfile"
    assert steps[-1].name == "[stage-3 3/3] RUN echo bye && exit 3"


def test_rerun_vertex_ends_done() -> None:
    # BuildKit runs "load build definition" twice; the step must end DONE, not RUNNING.
    first = fold("real-ok").steps[0]
    assert first.state is StepState.DONE


def test_real_failure() -> None:
    failure = fold("real-failing").failure()
    assert failure is not None
    assert failure.name == "[stage-3 3/3] RUN echo bye && exit 3"
    assert failure.logs == ("bye",)
    assert failure.exit_code == 3
    assert failure.error == FAILING_EXIT


def test_real_logs_cleaned() -> None:
    model = fold("real-ok")
    parallel = next(s for s in model.steps if s.name.startswith("[a 1/1]"))
    assert list(parallel.logs.lines)[-3:] == ["partial done", "red", "progress 100%"]
    stderr_step = next(s for s in model.steps if s.name.startswith("[b 1/1]"))
    assert list(stderr_step.logs.lines) == ["to stderr", "b done"]


@pytest.mark.parametrize("name", ["real-cached", "real-client-cached"])
def test_real_cached_steps(name: str) -> None:
    states = [s.state for s in fold(name).steps]
    assert states.count(StepState.CACHED) == 6
    assert states[-1] is StepState.ERROR


def test_real_warnings() -> None:
    warnings = fold("real-ok").warnings
    assert [w.short.split(":")[0] for w in warnings] == ["FromAsCasing", "LegacyKeyValueFormat"]
    assert [w.location() for w in warnings] == ["Dockerfile.ok:1", "Dockerfile.ok:16"]


def test_tty_summary_of_real_failure() -> None:
    console_out = io.StringIO()
    console = Console(file=console_out, width=120, color_system=None)
    console.print(render_summary(fold("real-failing"), ok=False))
    text = console_out.getvalue()
    assert "[+] Building 3.1s (10/10) FAILED" in text
    assert "ERROR [stage-3 3/3] RUN echo bye && exit 3" in text
    assert "\nbye\n" in text
    assert "exit code: 3" in text

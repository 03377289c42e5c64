"""Several builders' solves sharing one display: labelled steps, tty sections, rawjson field."""

from __future__ import annotations

import io
import json

from kubectl_build.progress.model import ProgressModel
from kubectl_build.progress.plain import PlainDisplay
from kubectl_build.progress.rawjson import RawJsonDisplay
from kubectl_build.progress.tty import render_live, render_summary
from tests.unit.progress.progress_streams import T0, multistep_build
from tests.unit.progress.test_progress_tty import text_of

AMD, ARM = "buildkit linux/amd64", "buildkit-arm64 linux/arm64"


def _interleaved(model_apply: object) -> None:
    amd, arm = multistep_build(), multistep_build()
    for i in range(max(len(amd), len(arm))):
        for prefix, stream in ((AMD, amd), (ARM, arm)):
            if i < len(stream):
                model_apply(stream[i], prefix=prefix)  # type: ignore[operator]


def test_steps_know_their_builder_and_single_streams_have_none() -> None:
    model = ProgressModel()
    _interleaved(model.apply)
    assert {step.stream for step in model.steps} == {AMD, ARM}
    single = ProgressModel()
    for message in multistep_build():
        single.apply(message)
    assert {step.stream for step in single.steps} == {""}


def test_tty_shows_one_section_per_builder() -> None:
    model = ProgressModel()
    _interleaved(model.apply)
    for text in (text_of(render_summary(model, True)), text_of(render_live(model, T0 + 10.0))):
        lines = [line.rstrip() for line in text.splitlines()]
        titles = [i for i, line in enumerate(lines) if line.startswith("--- ")]
        assert [lines[i] for i in titles] == [f"--- {AMD}", f"--- {ARM}"]
        amd_rows, arm_rows = lines[titles[0] + 1:titles[1]], lines[titles[1] + 1:]
        assert amd_rows and all(ARM not in row for row in amd_rows)
        assert any(f"[{ARM}" in row for row in arm_rows)


def test_tty_single_builder_has_no_section_titles() -> None:
    model = ProgressModel()
    for message in multistep_build():
        model.apply(message)
    assert "--- " not in text_of(render_summary(model, True))


def test_plain_prefixes_each_step_with_its_builder() -> None:
    out = io.StringIO()
    display = PlainDisplay(out)
    _interleaved(display.update)
    display.finish(True)
    headers = [line for line in out.getvalue().splitlines() if line.startswith("#") and "[" in line]
    assert any(f"[{AMD} " in h or f"[{AMD}]" in h for h in headers)
    assert any(f"[{ARM} " in h or f"[{ARM}]" in h for h in headers)


def test_rawjson_names_the_group_only_for_parallel_solves() -> None:
    out = io.StringIO()
    display = RawJsonDisplay(out)
    for message in multistep_build():
        display.update(message)
    plain = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all("group" not in obj for obj in plain)
    out = io.StringIO()
    display = RawJsonDisplay(out)
    _interleaved(display.update)
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {obj["group"] for obj in objs} == {AMD, ARM}
    assert all(next(iter(obj)) == "group" for obj in objs)
    # the rest of each object is exactly what a single solve writes
    assert [{k: v for k, v in obj.items() if k != "group"} for obj in objs if obj["group"] == AMD] == plain

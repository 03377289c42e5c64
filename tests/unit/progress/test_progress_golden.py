"""Golden tests: recorded status streams rendered by the plain and rawjson displays.

Regenerate the recorded streams and the expected outputs with
``UPDATE_GOLDEN=1 pytest tests/unit/progress`` and review the diff.
"""

from __future__ import annotations

import io
import os

import pytest

from kubectl_build._proto.control_pb2 import StatusResponse
from kubectl_build.progress.plain import PlainDisplay
from kubectl_build.progress.rawjson import RawJsonDisplay
from tests.unit.progress.progress_streams import (
    FAILING,
    GOLDEN,
    STREAMS,
    decode_stream,
    encode_stream,
)

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def recorded(name: str) -> list[StatusResponse]:
    """The recorded stream, rewritten from the builder first when regenerating."""
    path = GOLDEN / f"{name}.binpb"
    if UPDATE:
        path.write_bytes(encode_stream(STREAMS[name]()))
    return decode_stream(path.read_bytes())


def render(mode: str, messages: list[StatusResponse], ok: bool) -> str:
    out = io.StringIO()
    display = PlainDisplay(out) if mode == "plain" else RawJsonDisplay(out)
    display.start()
    for message in messages:
        display.update(message)
    display.finish(ok)
    return out.getvalue()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_recording_matches_builder(name: str) -> None:
    assert recorded(name) == STREAMS[name]()


@pytest.mark.parametrize("mode", ["plain", "rawjson"])
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_golden_output(name: str, mode: str) -> None:
    text = render(mode, recorded(name), ok=name not in FAILING)
    check_golden(f"{name}.{mode}.txt", text)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_plain_has_no_escape_sequences(name: str) -> None:
    assert "\x1b" not in render("plain", recorded(name), ok=name not in FAILING)

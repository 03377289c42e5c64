"""Fixtures of the job runner's unit tests: fake daemons, a context, a console."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubectl_build.console import Console
from tests.fakes.buildkitd import FakeBuildkitd


@pytest.fixture
def daemons() -> Iterator[Callable[[], FakeBuildkitd]]:
    """Makes fake daemons (each on its own socket); all stop at the end of the test."""
    started: list[FakeBuildkitd] = []
    # A short directory: a unix socket path must stay under ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="kb-fake-") as folder:
        def make() -> FakeBuildkitd:
            daemon = FakeBuildkitd(Path(folder) / f"d{len(started)}.sock")
            started.append(daemon)
            return daemon

        try:
            yield make
        finally:
            for daemon in started:
                daemon.stop()


@pytest.fixture
def context_dir(tmp_path: Path) -> Path:
    """A build context with a Dockerfile and a file to copy."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    (tmp_path / "hello").write_text("hi\n")
    return tmp_path


@dataclass(frozen=True)
class Captured:
    """A console whose stdout and stderr the test can read."""

    console: Console
    stdout: io.StringIO
    stderr: io.StringIO


@pytest.fixture
def captured() -> Captured:
    """A console writing into strings, --debug lines included."""
    out, err = io.StringIO(), io.StringIO()
    return Captured(Console(stdout=out, stderr=err, debug=True), out, err)

"""Session-wide: the CLI's local agents live in a folder of this test run, stopped at its end.

Every `kubectl-build` a test runs as a program may start an agent or be run by one
(kubectl_build.agent), as on a user's machine; none outlives the run or meets the
agents of a developer's own builds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_build.agent import wire


@pytest.fixture(autouse=True, scope="session")
def agent_folder() -> Iterator[Path]:
    previous = os.environ.get(wire.FOLDER)
    with tempfile.TemporaryDirectory(prefix="kb-agents-") as folder:
        os.environ[wire.FOLDER] = folder
        try:
            yield Path(folder)
        finally:
            stop_agents(Path(folder))
            if previous is None:
                os.environ.pop(wire.FOLDER, None)
            else:
                os.environ[wire.FOLDER] = previous


def stop_agents(folder: Path) -> None:
    """SIGTERM every agent that wrote its pid into ``folder``."""
    for pidfile in folder.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)

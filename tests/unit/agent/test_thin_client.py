"""The hand-over to the agent imports nothing beyond the thin client: every module here
is time on every warm build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_hand_over_imports_only_the_thin_client(tmp_path: Path) -> None:
    folder = tmp_path / "agent"
    folder.mkdir(mode=0o700)
    code = ("import sys\n"
            "import kubectl_build.__main__\n"
            "from kubectl_build.agent import client\n"
            "assert client.delegate(['ctx']) is None\n"  # no agent listens: build here
            "print(' '.join(m for m in sys.modules if m.startswith('kubectl_build')))")
    # A standing buildkitd would skip the agent before the socket is even tried.
    env = {k: v for k, v in os.environ.items() if k != "BUILDKIT_HOST"}
    env.update(KUBECTL_BUILD_AGENT_DIR=str(folder), KUBECTL_BUILD_AGENT="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=60, env=env)
    assert set(done.stdout.split()) == {"kubectl_build", "kubectl_build.__main__",
                                        "kubectl_build.agent", "kubectl_build.agent.client",
                                        "kubectl_build.agent.wire"}

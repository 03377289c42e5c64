#!/usr/bin/env python3
"""The client checks every release runner makes (Linux, macOS, Windows): no test bed needed.

    python packaging/client_checks.py [PYTEST ARGS...]

The portability layer (the entry points in interpreters made to look like each client
OS, and the static guard check) and the unit tests of the pure, OS-independent
packages. hack/test runs them too, with everything else.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITES = ("tests/portability/test_entry_points.py", "tests/portability/test_guards.py",
          "tests/unit/host", "tests/unit/options", "tests/unit/platforms", "tests/unit/dockerfile",
          "tests/unit/planning", "tests/unit/test_layering.py", "tests/unit/test_shape.py")


def main() -> int:
    """Run the suites with pytest; its exit code."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *SUITES, *sys.argv[1:]]
    return subprocess.run(command, cwd=REPO, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())

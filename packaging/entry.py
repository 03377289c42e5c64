"""Entry point of the frozen release executable (PyInstaller).

One executable serves every program name: ``kubectl-build``, ``kubectl-buildkit`` and
the kubectl completion hooks ``kubectl_complete-build`` / ``kubectl_complete-buildkit``.
The name comes from ``KUBECTL_BUILD_AS`` (set by the small wrapper scripts shipped in
the archive, because krew cannot unpack symlinks) or else from argv[0] (krew's own
``kubectl-build`` link, or a user's ``ln -s kubectl-build kubectl-buildkit``).
"""

from __future__ import annotations

import os
import sys

from kubectl_build.__main__ import build_main, buildkit_main, kubectl_complete_main, serve_agent
from kubectl_build.agent.wire import SERVE as AGENT_SERVE


def _program() -> str:
    name = os.environ.pop("KUBECTL_BUILD_AS", "") or os.path.basename(sys.argv[0])
    return name.removesuffix(".exe")


def main() -> int:
    """Run the program the executable was invoked as.

    That is the local agent instead when the CLI starts this executable to serve as one
    (kubectl_build.agent).
    """
    serve = os.environ.pop(AGENT_SERVE, "")
    if serve:
        return serve_agent(serve)
    program = _program()
    if program.startswith("kubectl_complete-"):
        return kubectl_complete_main(program.removeprefix("kubectl_complete-"), sys.argv[1:])
    if program == "kubectl-buildkit":
        return buildkit_main()
    return build_main()


if __name__ == "__main__":
    sys.exit(main())

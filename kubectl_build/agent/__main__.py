"""``python -m kubectl_build.agent SOCKET``: the agent process (started by the CLI)."""

import sys

from kubectl_build.agent.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

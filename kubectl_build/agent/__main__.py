"""``python -m kubectl_build.agent SOCKET``: the agent process (started by the CLI).

The entry module starts the server with the build it runs (agent/server.py main).
"""

import sys

from kubectl_build.__main__ import serve_agent

if __name__ == "__main__":
    sys.exit(serve_agent(sys.argv[1]))

"""A static check: no POSIX- or Linux-only API is reached on a path macOS or Windows takes.

Every use in the package of an API some client OS lacks is listed here with the guard that
keeps other clients away from it; a new use fails until it is guarded and listed. The
agent modules that use them freely are imported only by the entry, after
host.facts.agent_blocker() said yes (checked below too).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "kubectl_build"

# (module, attribute): attributes that do not exist on Windows, or on macOS (Linux-only).
ATTRIBUTES = {
    "os": {"fork", "getuid", "geteuid", "getgid", "setsid", "killpg", "getpgid", "nice", "splice",
           "sysconf", "pipe2", "sched_getaffinity", "getppid", "memfd_create", "wait4", "WNOHANG"},
    "socket": {"AF_UNIX", "SO_PEERCRED", "send_fds", "recv_fds"},
    "signal": {"SIGHUP", "SIGCHLD", "SIGKILL", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGALRM"},
}
MODULES = {"fcntl", "termios", "pwd", "grp", "resource", "pty", "tty"}
KEYWORDS = {"preexec_fn", "pass_fds"}
AGENT_ONLY = "imported only after host.facts.agent_blocker() is None (Linux)"

# Where each use is allowed, and why it is safe on the other clients.
ALLOWED: dict[str, tuple[set[str], str]] = {
    "agent/client.py": ({"socket.AF_UNIX", "socket.SO_PEERCRED", "os.getuid", "signal.SIGHUP",
                         "socket.send_fds"},
                        AGENT_ONLY),
    "agent/server.py": ({"socket.AF_UNIX", "socket.SO_PEERCRED", "os.getuid", "os.fork", "fcntl",
                         "socket.recv_fds", "os.WNOHANG"}, AGENT_ONLY),
    "agent/runner.py": ({"signal.SIGHUP", "signal.SIGCHLD", "os.getppid", "/proc"}, AGENT_ONLY),
    "agent/wire.py": ({"os.getuid"}, "socket_path() is called by the agent's client and server "
                                     "only"),
    "agent/warm_exec.py": ({"preexec_fn", "os.nice", "/proc"},
                           "preexec_fn only where facts.lower_priority_supported(); "
                           "AgentOwned.poll (/proc) is used by the agent's copies only"),
    "host/process.py": ({"/proc", "os.sysconf"}, "read on Linux only; sysconf behind hasattr"),
    "host/facts.py": ({"/proc"}, "the check itself (os.path.isdir)"),
    "kube/transport.py": ({"socket.AF_UNIX", "os.splice"},
                          "behind facts.unix_sockets() / facts.kernel_splice()"),
    "buildkit/session/ssh.py": ({"socket.AF_UNIX"},
                                "options/specs.py refuses --ssh where facts.unix_sockets() "
                                "is false"),
}


def _uses(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.attr in ATTRIBUTES.get(node.value.id, ()):
            yield f"{node.value.id}.{node.attr}"
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] in MODULES)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in MODULES:
            yield node.module or ""
        elif isinstance(node, ast.keyword) and node.arg in KEYWORDS:
            yield node.arg
        elif _reads_proc(node):
            yield "/proc"


def _reads_proc(node: ast.AST) -> bool:
    """A string (or the start of an f-string) naming a /proc path."""
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[0]
    return isinstance(node, ast.Constant) and str(node.value).startswith("/proc")


def _found() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("_proto/"):
            continue
        uses = set(_uses(ast.parse(path.read_text(), rel)))
        if uses:
            found[rel] = uses
    return found


def test_the_scan_sees_the_known_uses() -> None:
    found = _found()
    assert "socket.SO_PEERCRED" in found["agent/server.py"]
    assert "/proc" in found["host/process.py"]  # f-strings too


def test_every_unportable_use_is_where_a_guard_keeps_other_clients_away() -> None:
    unguarded = {rel: sorted(uses - ALLOWED.get(rel, (set(), ""))[0])
                 for rel, uses in _found().items()}
    assert {rel: uses for rel, uses in unguarded.items() if uses} == {}


def test_the_allow_list_has_no_stale_entries() -> None:
    found = _found()
    stale = {rel: sorted(allowed - found.get(rel, set())) for rel, (allowed, _) in ALLOWED.items()}
    assert {rel: names for rel, names in stale.items() if names} == {}


def test_the_agent_modules_are_imported_only_by_the_entry_behind_the_guard() -> None:
    agent_only = {"kubectl_build.agent.client", "kubectl_build.agent.server",
                  "kubectl_build.agent.runner"}
    importers: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {f"{node.module}.{a.name}" for a in node.names} | {node.module}
                for hit in names & agent_only:
                    importers.setdefault(hit, set()).add(rel)
    outside = {m: sorted(r for r in rels if not r.startswith("agent/") and r != "__main__.py")
               for m, rels in importers.items()}
    assert {m: r for m, r in outside.items() if r} == {}
    entry = (PACKAGE / "__main__.py").read_text()
    guard = entry.index("if agent_blocker() is not None:")
    assert guard < entry.index("from kubectl_build.agent import client as agent")
    server_import = entry.index("from kubectl_build.agent.server import main")
    # the agent's server runs only in the process the client started (Linux only)
    assert "def serve_agent" in entry[:server_import]

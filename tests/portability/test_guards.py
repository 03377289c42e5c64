"""A static check: no POSIX- or Linux-only API is reached on a path macOS or Windows takes.

Every attribute of os, socket, signal and select that the package uses is either on the
list of those every client OS has, or listed here with the guard that keeps other clients
away from it; a new use fails until it is guarded and listed. The
agent modules that use them freely are imported only by the entry, after
host.facts.agent_blocker() said yes (checked below too).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "kubectl_build"

# What os, socket, signal and select offer on every client OS (CPython 3.11 on Linux, macOS
# and Windows, per the library reference's "Availability" notes). Any other attribute of
# theirs that the package uses must be listed in ALLOWED with its guard; a new use fails
# until someone checked where it exists.
PORTABLE = {
    "os": {"DirEntry", "PathLike", "O_RDONLY", "O_WRONLY", "O_RDWR", "O_CREAT", "O_EXCL", "O_TRUNC",
           "O_APPEND", "SEEK_SET", "SEEK_CUR", "SEEK_END", "F_OK", "R_OK", "W_OK", "X_OK", "_exit",
           "access", "chdir", "chmod", "close", "cpu_count", "curdir", "devnull", "dup", "dup2",
           "environ", "error", "extsep", "fdopen", "fsdecode", "fsencode", "fspath", "fstat", "fsync",
           "get_inheritable", "get_terminal_size", "getcwd", "getenv", "getpid", "getppid", "isatty",
           "kill", "linesep", "link", "listdir", "lseek", "lstat", "makedirs", "mkdir", "name", "open",
           "pardir", "path", "pathsep", "pipe", "read", "readlink", "remove", "removedirs", "rename",
           "replace", "rmdir", "scandir", "sep", "set_inheritable", "stat", "stat_result", "strerror",
           "symlink", "terminal_size", "truncate", "umask", "unlink", "urandom", "utime", "waitpid",
           "walk", "write"},
    "socket": {"AF_INET", "AF_INET6", "AF_UNSPEC", "SOCK_STREAM", "SOL_SOCKET", "SO_REUSEADDR",
               "SO_KEEPALIVE", "IPPROTO_TCP", "TCP_NODELAY", "SHUT_RD", "SHUT_WR", "SHUT_RDWR",
               "MSG_PEEK", "create_connection", "create_server", "error", "gaierror", "getaddrinfo",
               "gethostname", "socket", "socketpair", "timeout"},
    "signal": {"SIGINT", "SIGTERM", "SIGABRT", "SIG_DFL", "SIG_IGN", "Signals", "Handlers",
               "default_int_handler", "getsignal", "raise_signal", "signal", "valid_signals"},
    "select": {"select"},
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
                         "socket.recv_fds", "os.WNOHANG", "os.set_blocking"}, AGENT_ONLY),
    "agent/runner.py": ({"signal.SIGHUP", "signal.SIGCHLD", "/proc"}, AGENT_ONLY),
    "agent/wire.py": ({"os.getuid"}, "socket_path() is called by the agent's client and server "
                                     "only"),
    "agent/warm_exec.py": ({"preexec_fn", "os.nice", "/proc"},
                           "preexec_fn only where facts.lower_priority_supported(); "
                           "AgentOwned.poll (/proc) is used by the agent's copies only"),
    "host/process.py": ({"/proc", "os.sysconf"}, "read on Linux only; sysconf behind hasattr"),
    "host/facts.py": ({"/proc"}, "the check itself (os.path.isdir)"),
    "host/xattrs.py": ({"os.listxattr", "os.getxattr"},
                       "LinuxXattrs is chosen only where hasattr(os, 'listxattr')"),
    "kube/transport.py": ({"socket.AF_UNIX", "os.splice"},
                          "behind facts.unix_sockets() / facts.kernel_splice()"),
    "buildkit/session/ssh.py": ({"socket.AF_UNIX"},
                                "options/specs.py refuses --ssh where facts.unix_sockets() "
                                "is false"),
}


def _uses(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in PORTABLE and node.attr not in PORTABLE[node.value.id]:
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
    snippet = "os.listxattr(p); os.open(p, os.O_RDONLY | os.O_CLOEXEC); signal.SIGHUP; os.getpid()"
    assert sorted(_uses(ast.parse(snippet))) == ["os.O_CLOEXEC", "os.listxattr", "signal.SIGHUP"]


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

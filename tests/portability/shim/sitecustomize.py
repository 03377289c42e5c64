"""Make this Linux interpreter look like a macOS or Windows client: KB_PRETEND_OS=darwin|win32.

Loaded at start-up (this folder on PYTHONPATH). The standard library and the dependencies
that choose an implementation when imported are imported first and keep their Linux one:
they have to, to run here, and their own projects test them on each OS. Then what the
package itself sees changes: ``sys.platform``, the POSIX-only functions and constants the
OS lacks (removed), the modules it lacks (unimportable) and /proc (absent). That is
honest for the package's own decisions, which is what this layer tests; the CI matrix
(.github/workflows/clients.yml) runs the real interpreters.
"""

from __future__ import annotations

import builtins
import os
import sys

_PRETEND = os.environ.get("KB_PRETEND_OS")

# Imported before the switch: modules that pick a platform implementation at import.
_PRELOAD = ("asyncio", "concurrent.futures", "ctypes", "ctypes.util", "getpass", "http.client",
            "locale", "mimetypes", "platform", "selectors", "shutil", "signal", "socket", "ssl",
            "subprocess", "tempfile", "threading", "urllib.request", "uuid", "zipfile",
            "click", "rich.console", "rich.live", "rich.text", "grpc", "google.protobuf",
            "h2.connection", "yaml", "urllib3", "kubernetes.client", "kubernetes.config",
            "kubernetes.stream")

# What the package must not reach. The stdlib's own POSIX internals that its preloaded
# modules call (subprocess's os.waitpid/WNOHANG, ...) stay: they are this machine's.
_MISSING: dict[str, dict[str, tuple[str, ...]]] = {
    "darwin": {
        # CPython's xattr functions are Linux-only (macOS has the calls, not the functions)
        "os": ("splice", "pipe2", "sched_getaffinity", "memfd_create", "listxattr", "getxattr",
               "setxattr", "removexattr", "posix_fadvise", "posix_fallocate", "fdatasync",
               "copy_file_range", "eventfd", "pidfd_open", "getrandom"),
        "socket": ("SO_PEERCRED",),
    },
    "win32": {
        "os": ("fork", "getuid", "geteuid", "getgid", "getegid", "setsid", "killpg", "getpgid",
               "nice", "splice", "sysconf", "pipe2", "sched_getaffinity", "memfd_create",
               "forkpty", "sync", "listxattr", "getxattr", "setxattr", "removexattr",
               "O_CLOEXEC", "O_NOFOLLOW", "O_NONBLOCK", "major", "minor", "makedev", "mknod",
               "mkfifo", "set_blocking", "get_blocking", "chown", "lchown", "fchown", "statvfs",
               "getpgrp", "getsid", "getgroups", "ttyname", "openpty", "wait3", "posix_fadvise",
               "posix_fallocate", "fdatasync", "copy_file_range", "eventfd", "pidfd_open",
               "getrandom", "sendfile", "uname", "getloadavg"),
        "socket": ("AF_UNIX", "SO_PEERCRED", "send_fds", "recv_fds", "sethostname"),
        "signal": ("SIGHUP", "SIGCHLD", "SIGKILL", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE",
                   "SIGALRM", "SIGTSTP", "SIGCONT", "SIGWINCH", "pthread_kill", "setitimer",
                   "siginterrupt", "alarm", "pause"),
    },
}
_ADDED: dict[str, dict[str, dict[str, int]]] = {
    "darwin": {"socket": {"LOCAL_PEERCRED": 1}},
}
_NO_MODULES = {"win32": ("fcntl", "termios", "pwd", "grp", "resource", "pty", "tty", "posix_ipc")}


def _hide_proc() -> None:
    real_open, real_stat, real_listdir = builtins.open, os.stat, os.listdir

    def absent(path: object) -> bool:
        text = os.fsdecode(path) if isinstance(path, str | bytes) else ""
        return text == "/proc" or text.startswith("/proc/")

    def fake_open(file: object, *args: object, **kwargs: object) -> object:
        if absent(file):
            raise FileNotFoundError(2, "No such file or directory", file)
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def fake_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if absent(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    def fake_listdir(path: object = ".") -> list[str]:
        if absent(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_listdir(path)  # type: ignore[arg-type]

    builtins.open = fake_open  # type: ignore[assignment]
    os.stat = fake_stat  # type: ignore[assignment]
    os.listdir = fake_listdir  # type: ignore[assignment]


def _pretend(target: str) -> None:
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    for module_name, names in _MISSING[target].items():
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        for name in names:
            if hasattr(module, name):
                delattr(module, name)
    for module_name, values in _ADDED.get(target, {}).items():
        for name, value in values.items():
            setattr(importlib.import_module(module_name), name, value)
    for name in _NO_MODULES.get(target, ()):
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    _hide_proc()
    sys.platform = target


if _PRETEND:
    if _PRETEND not in _MISSING:
        raise SystemExit(f"KB_PRETEND_OS={_PRETEND!r}: use one of {', '.join(_MISSING)}")
    _pretend(_PRETEND)

"""What this OS gives the client, asked when needed (so a test can take a capability away).

The cluster is Linux either way; the client runs on Linux, macOS and Windows. Code that
needs an OS-specific facility asks here first, and the modules that use one unguarded
(the local agent's) are imported only once :func:`agent_blocker` said yes.
"""

from __future__ import annotations

import os
import socket
import sys

LOCAL_AGENT_OS = "linux"


def unix_sockets() -> bool:
    """Whether AF_UNIX stream sockets exist (Linux, macOS; not CPython on Windows)."""
    return hasattr(socket, "AF_UNIX")


def sockets_as_stdio() -> bool:
    """Whether a socket can be a child process's stdin/stdout (POSIX, not Windows)."""
    return os.name == "posix" and sys.platform != "win32"


def kernel_splice() -> bool:
    """Whether os.splice moves bytes between sockets in the kernel (Linux)."""
    return hasattr(os, "splice")


def lower_priority_supported() -> bool:
    """Whether a child can be started at a lower priority (preexec_fn with os.nice)."""
    return sockets_as_stdio() and hasattr(os, "nice")


def windows_permissions() -> bool:
    """Whether file modes are Windows' (read-only or not), not POSIX permission bits."""
    return sys.platform == "win32"


# os.open flags for reading a file's bytes: Windows opens in text mode without O_BINARY
# (and has no O_CLOEXEC; Python makes descriptors non-inheritable anyway).
READ_BINARY = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def agent_blocker() -> str | None:
    """Why the local agent cannot run here, or None when it can.

    It needs a peer's credentials on a unix socket (SO_PEERCRED: only our own user may hand
    it a build), descriptor passing, fork() of a pre-imported interpreter and /proc. macOS has
    LOCAL_PEERCRED, but forking without exec once Apple's frameworks are loaded is unsafe
    (CPython's multiprocessing gave it up there), so the agent stays Linux-only.
    """
    if sys.platform != LOCAL_AGENT_OS:
        return f"the local agent runs on Linux clients only (this is {sys.platform})"
    missing = [name for name, present in (
        ("AF_UNIX", unix_sockets()), ("SO_PEERCRED", hasattr(socket, "SO_PEERCRED")),
        ("send_fds", hasattr(socket, "send_fds")), ("fork", hasattr(os, "fork")),
        ("/proc", os.path.isdir("/proc/self/fd"))) if not present]
    return f"the local agent needs {', '.join(missing)}" if missing else None

"""The project's exception types and the one exit-code table.

Errors are translated into these types once, at the boundary where they arise
(gRPC, Kubernetes API, file system); the CLI maps them to exit codes.
"""

from __future__ import annotations

import copy as _copy
import enum
from typing import ClassVar, Self


class ExitCode(enum.IntEnum):
    """Distinct exit codes, one per class of failure."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONTEXT = 3
    DAEMON_UNREACHABLE = 4
    BUILD_FAILED = 5
    REGISTRY_AUTH = 6
    REGISTRY = 7
    CLUSTER = 8
    BUILDER = 9
    OUTPUT = 10
    TIMEOUT = 11
    STDOUT_FLUSH = 120
    """The interpreter's own code when flushing stdout at exit fails after a success."""
    INTERRUPTED = 130


class KubectlBuildError(Exception):
    """Base of every user-facing error: what failed, why, and what to do.

    Errors are values: a layer that knows more (which builder ran the job, which Secret the
    credentials came from) makes a new error with :meth:`evolve` instead of editing the
    message; :meth:`one_line` composes the fields once, for the CLI.
    """

    exit_code: ClassVar[ExitCode] = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None, *, subject: str | None = None,
                 detail: str | None = None) -> None:
        """Create the error.

        Args:
            message: what failed and why, as the layer that raised it saw it.
            hint: what the user can do about it.
            subject: which part of the build it concerns (``builder buildkit-arm64
                (linux/arm64)``); None when the whole build.
            detail: a fact learnt after the failure that explains it (``credentials from
                secret ns/buildkit``), shown in parentheses after the message.
        """
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.subject = subject
        self.detail = detail

    def evolve(self, **changes: str | None) -> Self:
        """A copy with some fields replaced (``subject``, ``detail``, ``hint``, ``message``).

        The copy keeps the original as its cause, so ``--debug`` shows where it arose.
        """
        unknown = set(changes) - {"message", "hint", "subject", "detail"}
        if unknown:
            raise TypeError(f"not an error field: {', '.join(sorted(unknown))}")
        copy = _copy.copy(self)
        for name, value in changes.items():
            setattr(copy, name, value)
        copy.args = (copy.message,)
        copy.__cause__ = self.__cause__ or self
        return copy

    def one_line(self) -> str:
        """The single stderr line shown to the user."""
        text = " ".join(self.message.split())
        if self.subject:
            text = f"{self.subject}: {text}"
        if self.detail:
            text = f"{text} ({' '.join(self.detail.split())})"
        if self.hint:
            text = f"{text}; {' '.join(self.hint.split())}"
        return text


class UsageError(KubectlBuildError):
    """A flag or argument is malformed."""

    exit_code = ExitCode.USAGE


class ContextError(KubectlBuildError):
    """The build context or the Dockerfile cannot be read."""

    exit_code = ExitCode.CONTEXT


class DaemonUnreachableError(KubectlBuildError):
    """buildkitd cannot be reached."""

    exit_code = ExitCode.DAEMON_UNREACHABLE


class BuildFailedError(KubectlBuildError):
    """The daemon ran the build and it failed (a RUN step, a frontend error...)."""

    exit_code = ExitCode.BUILD_FAILED

    def __init__(self, message: str, hint: str | None = None, *, subject: str | None = None,
                 detail: str | None = None, step_exit_code: int | None = None) -> None:
        """Create the error; ``step_exit_code`` is the failing command's exit status."""
        super().__init__(message, hint, subject=subject, detail=detail)
        self.step_exit_code = step_exit_code


class RegistryAuthError(KubectlBuildError):
    """A registry refused our credentials (401/403)."""

    exit_code = ExitCode.REGISTRY_AUTH


class RegistryError(KubectlBuildError):
    """A registry request failed for another reason."""

    exit_code = ExitCode.REGISTRY


class ClusterError(KubectlBuildError):
    """The Kubernetes cluster cannot be reached or refused a request."""

    exit_code = ExitCode.CLUSTER


class BuilderError(KubectlBuildError):
    """The builder (buildkitd Deployment) cannot be created or is not usable."""

    exit_code = ExitCode.BUILDER


class OutputError(KubectlBuildError):
    """An export destination cannot be written."""

    exit_code = ExitCode.OUTPUT


class WaitTimeoutError(KubectlBuildError):
    """A bounded wait ran out."""

    exit_code = ExitCode.TIMEOUT


class BuildInterruptedError(KubectlBuildError):
    """Ctrl-C: the build was cancelled in the daemon."""

    exit_code = ExitCode.INTERRUPTED

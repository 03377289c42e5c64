"""The project's exception types and the one exit-code table.

Errors are translated into these types once, at the boundary where they arise
(gRPC, Kubernetes API, file system); the CLI maps them to exit codes.
"""

from __future__ import annotations

import enum


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
    INTERRUPTED = 130


class KubectlBuildError(Exception):
    """Base of every user-facing error: what failed, why, and what to do."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The single stderr line shown to the user."""
        text = " ".join(self.message.split())
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

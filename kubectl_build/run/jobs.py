"""The job runner: every build shape is a set of jobs run under one cancellation scope.

A job is one builder's share of a build (its solves, with their own session services).
:func:`run_jobs` runs them in parallel threads: the first failure cancels the others and is
raised naming its job; Ctrl-C cancels all and raises :class:`BuildInterruptedError` (exit
130); a single job runs on the calling thread, so the common build starts no thread.
Progress, cancellation and error naming are properties of this runner, tested once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kubectl_build.errors import BuildInterruptedError, KubectlBuildError

T = TypeVar("T")

CANCEL_GRACE = 15.0
"""Seconds the other jobs get to stop their solves once one failed (or on Ctrl-C)."""
_POLL = 0.5


class JobCancelledError(KubectlBuildError):
    """A job stopped because another one failed (never the error reported)."""


@dataclass(frozen=True)
class Job(Generic[T]):
    """One unit of work of a build."""

    label: str | None
    """How errors name it (``builder buildkit-arm64 (linux/arm64)``); None when the build is
    this one job, whose errors speak for the whole build."""
    run: Callable[[threading.Event], T]
    """Does the work; must return soon after the event is set (raising JobCancelledError)."""


def run_jobs(jobs: Sequence[Job[T]], *, grace: float = CANCEL_GRACE) -> list[T]:
    """Run the jobs; their results in job order.

    Raises:
        KubectlBuildError: the first job failure (its subject naming the job), or
            BuildInterruptedError on Ctrl-C once every job stopped (bounded by ``grace``).
    """
    cancel = threading.Event()
    if len(jobs) == 1:
        return [_run_here(jobs[0], cancel)]
    finished: queue.Queue[tuple[int, T | None, BaseException | None]] = queue.Queue()
    results: dict[int, T] = {}
    threads = [threading.Thread(target=_worker, args=(index, job, cancel, finished),
                                name=f"kb-job-{index}", daemon=True)
               for index, job in enumerate(jobs)]
    try:
        for thread in threads:
            thread.start()
        failure = _collect(jobs, finished, results)
    except KeyboardInterrupt:
        cancel.set()
        # Counted from the threads, not from the loop: Ctrl-C may land between a start()
        # and the line after it, and that job must be waited for too.
        started = sum(thread.ident is not None for thread in threads)
        _drain(finished, started - len(results), grace)
        raise BuildInterruptedError("build cancelled", "every builder stopped its build") from None
    if failure is not None:
        cancel.set()
        _drain(finished, len(jobs) - len(results) - 1, grace)
        raise failure
    return [results[i] for i in range(len(jobs))]


def _worker(index: int, job: Job[T], cancel: threading.Event,
            finished: queue.Queue[tuple[int, T | None, BaseException | None]]) -> None:
    try:
        finished.put((index, job.run(cancel), None))
    except BaseException as err:  # noqa: BLE001 - handed to the main thread, which raises it
        finished.put((index, None, err))


def _collect(jobs: Sequence[Job[T]], finished: queue.Queue[tuple[int, T | None, BaseException | None]],
             results: dict[int, T]) -> BaseException | None:
    """Gather results until all jobs succeeded (None) or one failed (its named error)."""
    while len(results) < len(jobs):
        try:
            index, result, error = finished.get(timeout=_POLL)
        except queue.Empty:
            continue
        if error is None:
            results[index] = result  # type: ignore[assignment]
        elif not isinstance(error, JobCancelledError):
            return _named(error, jobs[index].label)
    return None


def _run_here(job: Job[T], cancel: threading.Event) -> T:
    try:
        return job.run(cancel)
    except KubectlBuildError as err:
        raise _named(err, job.label) from None


def _named(error: BaseException, label: str | None) -> BaseException:
    if label and isinstance(error, KubectlBuildError) and not isinstance(error, BuildInterruptedError):
        return error.evolve(subject=label)
    return error


def _drain(finished: queue.Queue[tuple[int, T | None, BaseException | None]], pending: int,
           grace: float) -> None:
    """Wait (bounded) for the cancelled jobs, so their solves are stopped in the daemon."""
    deadline = time.monotonic() + grace
    while pending > 0 and time.monotonic() < deadline:
        try:
            finished.get(timeout=_POLL)
            pending -= 1
        except queue.Empty:
            continue

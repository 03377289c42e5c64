"""The job runner: order, first-failure cancellation, Ctrl-C (kubectl_build.run.jobs)."""

from __future__ import annotations

import _thread
import threading

import pytest

from kubectl_build.errors import BuildFailedError, BuildInterruptedError, ExitCode
from kubectl_build.run.jobs import Job, JobCancelledError, run_jobs

WAIT = 10.0
"""Seconds any wait below may take before the test fails instead of hanging."""


def test_results_come_in_job_order_whatever_order_jobs_finish_in() -> None:
    # Each job waits for the one after it: they finish last to first.
    done = [threading.Event() for _ in range(3)]
    finish_order: list[int] = []

    def job(index: int) -> Job[int]:
        def run(cancel: threading.Event) -> int:
            if index + 1 < len(done):
                assert done[index + 1].wait(WAIT)
            finish_order.append(index)
            done[index].set()
            return index * 10
        return Job(f"job {index}", run)

    assert run_jobs([job(0), job(1), job(2)]) == [0, 10, 20]
    assert finish_order == [2, 1, 0]


def test_first_failure_cancels_the_others_and_names_its_job() -> None:
    cancelled: list[str] = []
    both_waiting = threading.Barrier(3, timeout=WAIT)

    def waits(name: str) -> Job[str]:
        def run(cancel: threading.Event) -> str:
            both_waiting.wait()
            if not cancel.wait(WAIT):
                return name
            cancelled.append(name)
            raise JobCancelledError("cancelled")
        return Job(name, run)

    def fails(cancel: threading.Event) -> str:
        both_waiting.wait()
        raise BuildFailedError("process did not complete successfully", "see the log")

    with pytest.raises(BuildFailedError) as info:
        run_jobs([waits("builder a (linux/amd64)"), Job("builder b (linux/arm64)", fails),
                  waits("builder c (linux/s390x)")])
    assert info.value.one_line() == ("builder b (linux/arm64): process did not complete successfully"
                                     "; see the log")
    # run_jobs returns only once the cancelled jobs stopped: both are already counted
    assert sorted(cancelled) == ["builder a (linux/amd64)", "builder c (linux/s390x)"]


def test_a_single_job_runs_on_the_calling_thread_and_names_itself() -> None:
    def run(cancel: threading.Event) -> str:
        if threading.current_thread() is not threading.main_thread():
            return "other thread"
        raise BuildFailedError("boom")

    with pytest.raises(BuildFailedError) as info:
        run_jobs([Job("builder b (linux/arm64)", run)])
    assert info.value.one_line() == "builder b (linux/arm64): boom"


def test_a_single_unlabelled_job_speaks_for_the_whole_build() -> None:
    def run(cancel: threading.Event) -> str:
        raise BuildFailedError("boom")

    with pytest.raises(BuildFailedError) as info:
        run_jobs([Job(None, run)])
    assert info.value.one_line() == "boom"


def test_ctrl_c_cancels_every_job_and_exits_130() -> None:
    seen: list[bool] = []
    other_started = threading.Event()

    def interrupts(cancel: threading.Event) -> None:
        assert other_started.wait(WAIT)
        _thread.interrupt_main()
        seen.append(cancel.wait(WAIT))

    def waits(cancel: threading.Event) -> None:
        other_started.set()
        seen.append(cancel.wait(WAIT))

    with pytest.raises(BuildInterruptedError) as info:
        run_jobs([Job("a", interrupts), Job("b", waits)])
    assert info.value.exit_code == ExitCode.INTERRUPTED
    # the runner waited for both jobs to stop before raising
    assert seen == [True, True]

"""The job record every pool keeps: made by Pool.apply, handed to submit, reported exactly once."""

from __future__ import annotations

import logging

import pytest

from taskq.drivers.pool import Job, Pool


class InlinePool(Pool):
    """The smallest pool: runs a job where it is submitted."""

    def submit(self, job: Job) -> None:
        try:
            value = job.target(*job.args)
        except Exception as exc:
            job.report(False, exc)
        else:
            job.report(True, value)


def test_apply_hands_submit_a_job_with_everything_apply_was_given() -> None:
    seen: list[Job] = []

    class Recording(InlinePool):
        def submit(self, job: Job) -> None:
            seen.append(job)

    Recording().apply(max, (1, 2), callback=print, error_callback=print, job_id="t1", soft_time_limit=1.5)
    [job] = seen
    assert (job.target, job.args, job.job_id, job.soft_time_limit, job.hard_time_limit) == (
        max,
        (1, 2),
        "t1",
        1.5,
        None,
    )
    assert (job.callback, job.error_callback, job.reported) == (print, print, False)


def test_the_outcome_reaches_the_right_callback() -> None:
    outcomes: list[tuple[str, object]] = []
    pool = InlinePool()
    pool.apply(
        max,
        (1, 2),
        callback=lambda v: outcomes.append(("ok", v)),
        error_callback=lambda e: outcomes.append(("error", e)),
    )
    pool.apply(
        int,
        ("x",),
        callback=lambda v: outcomes.append(("ok", v)),
        error_callback=lambda e: outcomes.append(("error", e)),
    )
    assert outcomes[0] == ("ok", 2)
    assert outcomes[1][0] == "error" and isinstance(outcomes[1][1], ValueError)


def test_a_job_is_reported_once_whatever_ends_it_later() -> None:
    outcomes: list[object] = []
    job = Job(max, (), outcomes.append, outcomes.append, "t1")
    assert job.report(True, "done") is True
    assert job.report(False, TimeoutError("too late")) is False
    assert outcomes == ["done"]


def test_a_callback_that_raises_is_logged_with_the_job_id_and_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(value: object) -> None:
        raise RuntimeError("callback bug")

    job = Job(max, (), broken, broken, "t42")
    with caplog.at_level(logging.ERROR, logger="taskq.drivers.pool"):
        assert job.report(True, 1) is True
    assert "the outcome callback of job t42 raised" in caplog.text
    assert "callback bug" in caplog.text


def test_a_pool_must_write_submit() -> None:
    class Empty(Pool):
        pass

    with pytest.raises(TypeError, match="submit"):
        Empty()  # type: ignore[abstract]  # the point of the test


def test_a_pool_that_counts_what_runs_gets_its_free_slots_from_it() -> None:
    class Counting(InlinePool):
        @property
        def running(self) -> int:
            return 3

    assert Counting(4).free_slots == 1
    assert Counting(2).free_slots == 0
    assert InlinePool(4).free_slots == 4
    assert InlinePool(4).running == 0

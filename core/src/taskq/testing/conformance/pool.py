"""The pool contract as a test suite: subclass :class:`PoolContract` and give it a pool.

    class TestThreadPool(PoolContract):
        @pytest.fixture
        def pool_class(self) -> type[Pool]:
            return ThreadPool

Each test builds its own pool through ``make_pool`` and stops it afterwards. Features a
pool does not claim in its capabilities are checked the other way round: asking for them
must fail with :class:`taskq.errors.PoolFeatureError`, never be ignored. Jobs are
module-level functions so that process pools can pickle them; a pool that runs an event
loop (``capabilities.coroutines``) is given coroutine functions.

A green thread pool (a :class:`taskq.drivers.support.greenpool.GreenPool`: gevent,
eventlet) passes :class:`~taskq.testing.conformance.green_pool.GreenPoolContract` instead,
which builds on the fixtures, the job sending and the outcome collection defined here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

from taskq.drivers.pool import Pool
from taskq.errors import PoolFeatureError, SoftTimeLimitExceeded, Terminated, TimeLimitExceeded, WorkerLostError

# Seconds any single outcome may take to arrive before a test fails.
OUTCOME_TIMEOUT = 20.0


# ---- Jobs (module level, so process pools can pickle them) -------------------------


def add(x: int, y: int) -> int:
    return x + y


def fail(message: str) -> None:
    raise KeyError(message)


def interval(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def nap_until_soft_limit(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(0.01)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "not interrupted"


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def pid() -> int:
    return os.getpid()


async def add_async(x: int, y: int) -> int:
    return x + y


async def fail_async(message: str) -> None:
    raise KeyError(message)


async def interval_async(seconds: float) -> tuple[float, float]:
    import asyncio

    start = time.time()
    await asyncio.sleep(seconds)
    return start, time.time()


async def nap_until_soft_limit_async(seconds: float) -> str:
    import asyncio

    try:
        await asyncio.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "not interrupted"


async def sleep_async(seconds: float) -> str:
    import asyncio

    await asyncio.sleep(seconds)
    return "woke"


async def pid_async() -> int:
    return os.getpid()


class Outcome:
    """Collects one job's callback or error callback, to wait on with a deadline."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.value: object = None
        self.error: BaseException | None = None
        self.calls = 0

    def callback(self, value: object) -> None:
        self.value = value
        self.calls += 1
        self._done.set()

    def error_callback(self, error: BaseException) -> None:
        self.error = error
        self.calls += 1
        self._done.set()

    def wait(self, timeout: float = OUTCOME_TIMEOUT) -> Outcome:
        assert self._done.wait(timeout), f"no outcome within {timeout}s"
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()


class _PoolSuite:
    """What both suites share: started pools of ``pool_class`` (stopped after the test), and jobs sent to them."""

    @pytest.fixture
    def pool_class(self) -> type[Pool]:
        raise NotImplementedError("define a pool_class fixture returning your Pool subclass")

    @pytest.fixture
    def make_pool(self, pool_class: type[Pool]) -> Iterator[Callable[..., Pool]]:
        made: list[Pool] = []

        def make(concurrency: int = 2, **options: object) -> Pool:
            pool = pool_class(concurrency, **cast("dict[str, Any]", options))
            pool.start()
            made.append(pool)
            return pool

        yield make
        for pool in made:
            pool.stop(wait=False)

    def submit(self, pool: Pool, target: Callable[..., object], args: tuple[object, ...], **limits: object) -> Outcome:
        """Apply ``target(*args)`` to ``pool``; its outcome arrives in what this returns."""
        outcome = Outcome()
        pool.apply(
            target,
            args,
            callback=outcome.callback,
            error_callback=outcome.error_callback,
            **limits,  # type: ignore[arg-type]  # job_id and time limits
        )
        return outcome


class PoolContract(_PoolSuite):
    """Reusable tests for a :class:`taskq.drivers.pool.Pool`. Provide ``pool_class``."""

    def job(self, pool: Pool, name: str) -> Callable[..., object]:
        """The job function ``name``, as a coroutine function on event-loop pools."""
        suffix = "_async" if pool.capabilities.coroutines else ""
        found: Callable[..., object] = globals()[name + suffix]
        return found

    def run(self, pool: Pool, name: str, *args: object, **limits: object) -> Outcome:
        return self.submit(pool, self.job(pool, name), args, **limits)

    # ---- Running and reporting ------------------------------------------------------

    def test_a_job_returns_its_value_through_the_callback(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool()
        outcome = self.run(pool, "add", 2, 3).wait()
        assert (outcome.value, outcome.error) == (5, None)

    def test_an_exception_reaches_the_error_callback_with_its_type(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool()
        outcome = self.run(pool, "fail", "boom").wait()
        assert isinstance(outcome.error, KeyError)
        assert "boom" in str(outcome.error)

    def test_each_job_gets_exactly_one_callback(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool()
        outcomes = [self.run(pool, "add", i, i) for i in range(20)]
        for outcome in outcomes:
            outcome.wait()
        time.sleep(0.05)  # let a stray second callback show itself
        assert [o.calls for o in outcomes] == [1] * 20
        assert [o.value for o in outcomes] == [i + i for i in range(20)]

    def test_jobs_run_side_by_side_up_to_the_concurrency(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool(2)
        if pool.capabilities.runs_inline:
            pytest.skip("an inline pool runs one job at a time by design")
        first = self.run(pool, "interval", 0.5)
        second = self.run(pool, "interval", 0.5)
        start1, end1 = cast("tuple[float, float]", first.wait().value)
        start2, end2 = cast("tuple[float, float]", second.wait().value)
        assert start2 < end1 and start1 < end2, "the two jobs did not overlap"

    def test_free_slots_shrink_while_jobs_run(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool(2)
        if pool.capabilities.runs_inline:
            pytest.skip("an inline pool's apply returns only when the job is done")
        assert pool.free_slots == 2
        outcome = self.run(pool, "sleep", 0.5)
        assert pool.free_slots == 1
        outcome.wait()
        deadline = time.monotonic() + OUTCOME_TIMEOUT
        while pool.free_slots != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.free_slots == 2

    def test_every_job_within_room_runs_and_no_more_than_the_concurrency_at_once(
        self, make_pool: Callable[..., Pool]
    ) -> None:
        pool = make_pool(2)
        if pool.capabilities.runs_inline:
            pytest.skip("an inline pool's apply returns only when the job is done")
        assert pool.room >= pool.free_slots == 2
        outcomes = [self.run(pool, "interval", 0.2) for _ in range(pool.room)]
        spans = [cast("tuple[float, float]", outcome.wait().value) for outcome in outcomes]
        for start, _end in spans:
            overlapping = sum(1 for s, e in spans if s <= start < e)
            assert overlapping <= 2, f"{overlapping} jobs ran at once in a pool of 2"

    def test_poll_reports_in_the_callers_thread_or_declines_at_once(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool(1)
        if pool.capabilities.runs_inline:
            pytest.skip("an inline pool reports before apply returns")
        threads: list[int] = []
        outcome = Outcome()

        def callback(value: object) -> None:
            threads.append(threading.get_ident())
            outcome.callback(value)

        pool.apply(self.job(pool, "sleep"), (0.2,), callback=callback, error_callback=outcome.error_callback)
        started = time.monotonic()
        if not pool.poll(OUTCOME_TIMEOUT):
            assert time.monotonic() - started < 0.5, "poll() declined, but only after waiting"
            outcome.wait()
            return
        deadline = time.monotonic() + OUTCOME_TIMEOUT
        while not outcome.done and time.monotonic() < deadline:
            pool.poll(deadline - time.monotonic())
        assert outcome.done and outcome.value == "woke"
        assert threads == [threading.get_ident()], "a polling pool reported from another thread"
        # After release() the pool's own threads report again.
        pool.release()
        assert self.run(pool, "add", 1, 2).wait().value == 3

    def test_interrupt_ends_a_poll_early(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool(1)
        if pool.capabilities.runs_inline:
            pytest.skip("an inline pool reports before apply returns")
        outcome = self.run(pool, "sleep", 2.0)
        timer = threading.Timer(0.2, pool.interrupt)
        timer.start()
        started = time.monotonic()
        try:
            polled = pool.poll(OUTCOME_TIMEOUT)
        finally:
            timer.cancel()
        assert time.monotonic() - started < 1.5, "interrupt() did not end the poll"
        if polled:
            assert not outcome.done
            pool.release()
        outcome.wait()

    def test_a_warm_stop_lets_running_jobs_finish(self, pool_class: type[Pool]) -> None:
        pool = pool_class(2)
        pool.start()
        if pool.capabilities.runs_inline:
            pool.stop(wait=True)
            pytest.skip("an inline pool has nothing running when stop() is called")
        outcome = self.run(pool, "sleep", 0.3)
        pool.stop(wait=True)
        assert outcome.wait(1.0).value == "woke"

    # ---- Time limits --------------------------------------------------------------------

    def test_the_soft_time_limit_raises_inside_the_job(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool(1)
        if not pool.capabilities.soft_time_limit:
            pytest.skip("the pool does not claim soft time limits (the worker warns at start-up)")
        if pool.capabilities.runs_inline and threading.current_thread() is not threading.main_thread():
            pytest.skip("an inline pool enforces limits from the main thread only")
        outcome = self.run(pool, "nap_until_soft_limit", 5.0, job_id="soft", soft_time_limit=0.3).wait()
        assert outcome.value == "cleaned up"

    def test_the_hard_time_limit_stops_the_job_and_the_pool_goes_on(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool(1)
        if not pool.capabilities.hard_time_limit:
            pytest.skip("the pool does not claim hard time limits (the worker warns at start-up)")
        if pool.capabilities.runs_inline and threading.current_thread() is not threading.main_thread():
            pytest.skip("an inline pool enforces limits from the main thread only")
        stuck = self.run(pool, "sleep", 30.0, job_id="hard", hard_time_limit=0.5).wait()
        assert isinstance(stuck.error, TimeLimitExceeded)
        assert self.run(pool, "add", 1, 1).wait().value == 2

    # ---- Optional features: honoured when claimed, refused loudly when not ------------

    def test_terminate_stops_a_running_job_or_is_refused(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool(1)
        if not pool.capabilities.terminate:
            with pytest.raises(PoolFeatureError):
                pool.terminate_job("anything")
            return
        outcome = self.run(pool, "sleep", 30.0, job_id="victim")
        deadline = time.monotonic() + OUTCOME_TIMEOUT
        while not pool.terminate_job("victim"):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.02)
        outcome.wait()
        assert isinstance(outcome.error, (Terminated, WorkerLostError))
        assert self.run(pool, "add", 2, 2).wait().value == 4

    def test_terminating_an_unknown_job_says_so(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool(1)
        if not pool.capabilities.terminate:
            pytest.skip("covered by the refusal test")
        assert pool.terminate_job("no-such-job") is False

    def test_grow_and_shrink_change_the_concurrency_or_are_refused(self, make_pool: Callable[..., Pool]) -> None:
        pool = make_pool(1)
        if not pool.capabilities.resize:
            with pytest.raises(PoolFeatureError):
                pool.grow(1)
            with pytest.raises(PoolFeatureError):
                pool.shrink(1)
            return
        pool.grow(2)
        assert pool.concurrency == 3
        outcomes = [self.run(pool, "interval", 0.4) for _ in range(3)]
        spans = [cast("tuple[float, float]", o.wait().value) for o in outcomes]
        starts = sorted(s for s, _ in spans)
        ends = sorted(e for _, e in spans)
        assert starts[-1] < ends[0], "three jobs should have run at once after grow(2)"
        pool.shrink(2)
        assert pool.concurrency == 1
        assert self.run(pool, "add", 3, 3).wait().value == 6

    def test_max_tasks_per_child_replaces_the_process_or_is_reported(self, pool_class: type[Pool]) -> None:
        pool = pool_class(1, max_tasks_per_child=1)
        pool.start()
        try:
            if not pool.capabilities.max_tasks_per_child:
                assert any("max_tasks_per_child" in text for text in pool.unsupported())
                return
            first = self.run(pool, "pid").wait().value
            second = self.run(pool, "pid").wait().value
            assert first != second
        finally:
            pool.stop(wait=False)


__all__ = ["Outcome", "PoolContract"]

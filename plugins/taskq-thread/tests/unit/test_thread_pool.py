"""The thread pool beyond the conformance suite: interrupts, resizing, stopping, the plugin."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from taskq.drivers.support.interrupt import InterruptibleCall
from taskq.errors import SoftTimeLimitExceeded
from taskq.plugins import load_plugins
from taskq.testing.conformance.pool import Outcome
from taskq_thread.pool import ThreadPool

# Seconds any wait in these tests may take.
DEADLINE = 10.0


@pytest.fixture
def make_pool() -> Iterator[Callable[..., ThreadPool]]:
    made: list[ThreadPool] = []

    def make(concurrency: int = 2, **options: object) -> ThreadPool:
        pool = ThreadPool(concurrency, **options)
        pool.start()
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.stop(wait=False)


def run(pool: ThreadPool, fn: Callable[..., object], *args: object, **limits: object) -> Outcome:
    outcome = Outcome()
    pool.apply(fn, args, callback=outcome.callback, error_callback=outcome.error_callback, **limits)  # type: ignore[arg-type]
    return outcome


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# ---- Interrupting a thread ---------------------------------------------------------


def test_an_interrupt_is_raised_inside_a_running_job() -> None:
    call = InterruptibleCall()
    started = threading.Event()
    outcome: list[tuple[bool, object]] = []

    def spin() -> str:
        started.set()
        while True:
            time.sleep(0.001)

    thread = threading.Thread(target=lambda: outcome.append(call.call(spin, ())))
    thread.start()
    assert started.wait(DEADLINE)
    assert call.raise_in(SoftTimeLimitExceeded) is True
    thread.join(DEADLINE)
    ok, error = outcome[0]
    assert not ok
    assert isinstance(error, SoftTimeLimitExceeded)


def test_an_interrupt_asked_for_before_the_job_starts_is_raised_as_it_starts() -> None:
    call = InterruptibleCall()
    assert call.raise_in(SoftTimeLimitExceeded) is True
    ok, error = call.call(lambda: "ran", ())
    assert not ok
    assert isinstance(error, SoftTimeLimitExceeded)


def test_an_interrupt_after_the_job_is_refused_and_never_lands() -> None:
    call = InterruptibleCall()
    assert call.call(lambda x: x * 2, (21,)) == (True, 42)
    assert call.raise_in(SoftTimeLimitExceeded) is False
    for _ in range(1000):  # plenty of bytecodes in which a stray exception would show up
        time.sleep(0)


def test_a_blocking_c_call_finishes_before_the_soft_limit_lands(make_pool: Callable[..., ThreadPool]) -> None:
    def one_long_sleep() -> float:
        start = time.monotonic()
        try:
            time.sleep(0.5)  # one C call: the interrupt waits for it to return
        except SoftTimeLimitExceeded:
            return time.monotonic() - start
        return -1.0

    pool = make_pool(1)
    elapsed = run(pool, one_long_sleep, soft_time_limit=0.05).wait().value
    assert isinstance(elapsed, float)
    assert elapsed >= 0.5


def test_the_soft_limit_is_raised_in_the_right_thread_only(make_pool: Callable[..., ThreadPool]) -> None:
    def nap(seconds: float, limited: bool) -> str:
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                time.sleep(0.01)
        except SoftTimeLimitExceeded:
            return "interrupted"
        return "slept"

    pool = make_pool(2)
    limited = run(pool, nap, 5.0, True, soft_time_limit=0.2)
    free = run(pool, nap, 0.6, False)
    assert (limited.wait().value, free.wait().value) == ("interrupted", "slept")


def test_the_hard_time_limit_is_not_enforced(make_pool: Callable[..., ThreadPool]) -> None:
    pool = make_pool(1)
    outcome = run(pool, lambda: time.sleep(0.3) or "finished", hard_time_limit=0.05).wait()
    assert outcome.value == "finished"


# ---- Size and options -------------------------------------------------------------


def test_per_child_limits_are_reported_as_unsupported() -> None:
    pool = ThreadPool(2, max_tasks_per_child=10, max_memory_per_child=100_000)
    problems = pool.unsupported()
    assert any("max_tasks_per_child" in p for p in problems)
    assert any("max_memory_per_child" in p for p in problems)


def test_jobs_beyond_the_concurrency_wait_their_turn(make_pool: Callable[..., ThreadPool]) -> None:
    pool = make_pool(2)
    gate = threading.Event()
    outcomes = [run(pool, gate.wait, DEADLINE) for _ in range(4)]
    assert pool.free_slots == 0
    assert pool.running == 4
    gate.set()
    assert [o.wait().value for o in outcomes] == [True] * 4
    wait_until(lambda: pool.free_slots == 2, "the slots to come back")


def test_shrink_lets_busy_threads_finish_then_removes_them(make_pool: Callable[..., ThreadPool]) -> None:
    pool = make_pool(3)
    gate = threading.Event()
    outcomes = [run(pool, gate.wait, DEADLINE) for _ in range(3)]
    pool.shrink(2)
    assert pool.concurrency == 1
    assert pool.free_slots == 0
    gate.set()
    assert all(o.wait().value is True for o in outcomes)
    wait_until(lambda: pool.info()["threads"] == 1, "two threads to exit")


def test_shrink_never_removes_the_last_thread(make_pool: Callable[..., ThreadPool]) -> None:
    pool = make_pool(2)
    pool.shrink(5)
    assert pool.concurrency == 1
    assert run(pool, lambda: "still here").wait().value == "still here"


# ---- Stopping and reporting ---------------------------------------------------------


def test_a_cold_stop_returns_while_a_job_runs_and_the_job_still_reports(make_pool: Callable[..., ThreadPool]) -> None:
    pool = make_pool(1)
    gate = threading.Event()
    outcome = run(pool, gate.wait, DEADLINE)
    pool.stop(wait=False)
    assert not outcome.done
    gate.set()
    assert outcome.wait().value is True


def test_a_stopped_pool_takes_no_more_jobs(make_pool: Callable[..., ThreadPool]) -> None:
    pool = make_pool(1)
    pool.stop(wait=True)
    with pytest.raises(RuntimeError, match="stopping"):
        run(pool, lambda: None)


def test_a_failing_callback_does_not_kill_the_thread(make_pool: Callable[..., ThreadPool]) -> None:
    pool = make_pool(1)

    def broken(_value: object) -> None:
        raise RuntimeError("callback bug")

    pool.apply(lambda: 1, (), callback=broken, error_callback=broken)
    assert run(pool, lambda: 2).wait().value == 2


def test_the_plugin_offers_the_pool_as_thread_and_threads() -> None:
    plugins = load_plugins()
    assert plugins.resolve_driver("pools", "thread") is ThreadPool
    assert plugins.resolve_driver("pools", "threads") is ThreadPool

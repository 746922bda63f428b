"""The asyncio pool beyond the conformance suite: the soft limit at an await, sync jobs, stopping."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from taskq.errors import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded, WorkerLostError
from taskq.plugins import load_plugins
from taskq.testing.conformance.pool import Outcome
from taskq_asyncio.pool import AsyncioPool

# Seconds any wait in these tests may take.
DEADLINE = 10.0


@pytest.fixture
def make_pool() -> Iterator[Callable[..., AsyncioPool]]:
    made: list[AsyncioPool] = []

    def make(concurrency: int = 2, **options: object) -> AsyncioPool:
        pool = AsyncioPool(concurrency, **options)
        pool.start()
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.stop(wait=False)


def run(pool: AsyncioPool, fn: Callable[..., object], *args: object, **limits: object) -> Outcome:
    outcome = Outcome()
    pool.apply(fn, args, callback=outcome.callback, error_callback=outcome.error_callback, **limits)  # type: ignore[arg-type]
    return outcome


# ---- Soft limit on coroutines ------------------------------------------------------------


async def catch_and_report() -> tuple[str, int, str]:
    try:
        await asyncio.sleep(10)
    except SoftTimeLimitExceeded as exc:
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0.01)  # the task is not cancelled: it may await again
        return "caught", task.cancelling(), str(exc)
    return "not interrupted", -1, ""


def test_the_soft_limit_arrives_at_the_await_and_leaves_the_task_uncancelled(
    make_pool: Callable[..., AsyncioPool],
) -> None:
    pool = make_pool(1)
    outcome = run(pool, catch_and_report, soft_time_limit=0.1).wait(DEADLINE)
    assert outcome.value == ("caught", 0, "soft time limit (0.1s) exceeded")


async def uncaught() -> None:
    await asyncio.sleep(10)


def test_an_uncaught_soft_limit_reaches_the_error_callback(make_pool: Callable[..., AsyncioPool]) -> None:
    pool = make_pool(1)
    outcome = run(pool, uncaught, soft_time_limit=0.1).wait(DEADLINE)
    assert isinstance(outcome.error, SoftTimeLimitExceeded)


async def inside_a_timeout() -> str:
    try:
        async with asyncio.timeout(5):
            await asyncio.sleep(10)
    except SoftTimeLimitExceeded:
        return "soft limit, not the task's own timeout"
    except TimeoutError:
        return "the task's own timeout"
    return "not interrupted"


def test_the_soft_limit_passes_through_the_tasks_own_timeout_block(make_pool: Callable[..., AsyncioPool]) -> None:
    pool = make_pool(1)
    assert run(pool, inside_a_timeout, soft_time_limit=0.1).wait(DEADLINE).value == (
        "soft limit, not the task's own timeout"
    )


# ---- Sync jobs -------------------------------------------------------------------------


def test_a_sync_job_runs_in_an_executor_thread(make_pool: Callable[..., AsyncioPool]) -> None:
    pool = make_pool(1)
    name = run(pool, lambda: threading.current_thread().name).wait(DEADLINE).value
    assert isinstance(name, str)
    assert name.startswith("taskq-asyncio-sync")


def spin_in_python() -> str:
    while True:
        sum(range(100))


def test_the_hard_limit_stops_a_sync_job_running_python_code(make_pool: Callable[..., AsyncioPool]) -> None:
    pool = make_pool(1)
    outcome = run(pool, spin_in_python, job_id="spinner", hard_time_limit=0.2).wait(DEADLINE)
    assert isinstance(outcome.error, TimeLimitExceeded)
    assert run(pool, lambda: "next").wait(DEADLINE).value == "next"


def test_terminate_stops_a_sync_job_running_python_code(make_pool: Callable[..., AsyncioPool]) -> None:
    pool = make_pool(1)
    outcome = run(pool, spin_in_python, job_id="spinner")
    assert pool.terminate_job("spinner") is True
    assert isinstance(outcome.wait(DEADLINE).error, Terminated)


# ---- Slots, terminate and stop -----------------------------------------------------------


async def wait_for(event: threading.Event) -> bool:
    while not event.is_set():
        await asyncio.sleep(0.005)
    return True


def test_a_job_terminated_while_waiting_for_a_slot_never_runs(make_pool: Callable[..., AsyncioPool]) -> None:
    pool = make_pool(1)
    gate = threading.Event()
    ran: list[str] = []

    async def record() -> None:
        ran.append("ran")

    first = run(pool, wait_for, gate)
    second = run(pool, record, job_id="queued")
    assert pool.terminate_job("queued") is True
    assert isinstance(second.wait(DEADLINE).error, Terminated)
    gate.set()
    assert first.wait(DEADLINE).value is True
    assert ran == []


def test_shrink_lowers_how_many_jobs_run_at_once(make_pool: Callable[..., AsyncioPool]) -> None:
    pool = make_pool(4)
    pool.shrink(3)
    assert pool.concurrency == 1
    state = {"now": 0, "most": 0}

    async def count() -> None:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        await asyncio.sleep(0.05)
        state["now"] -= 1

    for outcome in [run(pool, count) for _ in range(4)]:
        outcome.wait(DEADLINE)
    assert state["most"] == 1


def test_a_cold_stop_cancels_running_jobs_and_reports_them_lost(make_pool: Callable[..., AsyncioPool]) -> None:
    pool = make_pool(2)
    gate = threading.Event()
    outcome = run(pool, wait_for, gate)
    pool.stop(wait=False)
    assert isinstance(outcome.wait(DEADLINE).error, WorkerLostError)
    assert outcome.calls == 1


def test_a_stopped_pool_takes_no_more_jobs(make_pool: Callable[..., AsyncioPool]) -> None:
    pool = make_pool(1)
    pool.stop(wait=True)
    with pytest.raises(RuntimeError, match="stopping"):
        run(pool, lambda: None)


def test_the_plugin_offers_the_asyncio_pool() -> None:
    assert load_plugins().resolve_driver("pools", "asyncio") is AsyncioPool

"""A real worker on the asyncio pool, in this process, on the memory:// broker."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from taskq import App
from taskq.errors import SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded
from taskq.testing import start_worker

# Seconds any single result may take.
RESULT_TIMEOUT = 20.0


@pytest.fixture
def app() -> Iterator[App]:
    url = f"memory://{uuid.uuid4().hex}"
    app = App("asyncio-test", broker=url, backend=url, read_config=False)
    yield app
    app.close()


def overlapping(spans: list[tuple[float, float]]) -> bool:
    """True when every span started before any of them ended."""
    return max(start for start, _ in spans) < min(end for _, end in spans)


def test_async_and_sync_tasks_both_run_and_store_their_results(app: App) -> None:
    @app.task
    async def add_async(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x + y

    @app.task
    def add_sync(x: int, y: int) -> int:
        return x + y

    with start_worker(app, pool="asyncio", concurrency=10) as worker:
        assert worker.pool_name == "asyncio"
        results = [add_async.delay(i, 1) for i in range(10)] + [add_sync.delay(i, 2) for i in range(10)]
        values = [r.get(timeout=RESULT_TIMEOUT) for r in results]
    assert values == [i + 1 for i in range(10)] + [i + 2 for i in range(10)]


def test_twenty_async_tasks_run_at_the_same_time(app: App) -> None:
    @app.task
    async def nap(seconds: float) -> tuple[float, float]:
        start = time.time()
        await asyncio.sleep(seconds)
        return start, time.time()

    with start_worker(app, pool="asyncio", concurrency=20):
        results = [nap.delay(0.3) for _ in range(20)]
        spans = [tuple(r.get(timeout=RESULT_TIMEOUT)) for r in results]
    assert overlapping(spans), "the twenty naps should all have been running at once"  # type: ignore[arg-type]


def test_no_more_tasks_run_at_once_than_the_concurrency(app: App) -> None:
    state = {"now": 0, "most": 0}

    @app.task
    async def count(seconds: float) -> None:
        state["now"] += 1  # one loop thread: no lock needed
        state["most"] = max(state["most"], state["now"])
        await asyncio.sleep(seconds)
        state["now"] -= 1

    with start_worker(app, pool="asyncio", concurrency=3):
        results = [count.delay(0.1) for _ in range(12)]
        for r in results:
            r.get(timeout=RESULT_TIMEOUT)
    assert state["most"] == 3


def test_a_sync_task_runs_in_a_thread_and_does_not_block_the_loop(app: App) -> None:
    @app.task
    def block(seconds: float) -> tuple[str, float, float]:
        start = time.time()
        time.sleep(seconds)
        return threading.current_thread().name, start, time.time()

    @app.task
    async def quick() -> tuple[str, float]:
        return threading.current_thread().name, time.time()

    with start_worker(app, pool="asyncio", concurrency=4):
        blocked = block.delay(1.0)
        time.sleep(0.2)
        loop_thread, quick_at = quick.delay().get(timeout=RESULT_TIMEOUT)
        sync_thread, start, end = blocked.get(timeout=RESULT_TIMEOUT)
    assert loop_thread == "taskq-asyncio-loop"
    assert sync_thread != loop_thread
    assert start < quick_at < end, "the async task should have finished while the sync one slept"


def test_an_exception_is_reraised_by_get_with_its_type(app: App) -> None:
    @app.task
    async def fail(message: str) -> None:
        await asyncio.sleep(0)
        raise LookupError(message)

    @app.task
    def fail_sync(message: str) -> None:
        raise ValueError(message)

    with start_worker(app, pool="asyncio", concurrency=4):
        with pytest.raises(LookupError, match="async boom"):
            fail.delay("async boom").get(timeout=RESULT_TIMEOUT)
        with pytest.raises(ValueError, match="sync boom"):
            fail_sync.delay("sync boom").get(timeout=RESULT_TIMEOUT)


def test_each_concurrent_task_sees_its_own_request_id(app: App) -> None:
    @app.task(bind=True)
    async def whoami(self) -> list[str | None]:  # type: ignore[no-untyped-def]
        seen = []
        for _ in range(5):
            seen.append(self.request.id)
            await asyncio.sleep(0.01)  # the other tasks run in between
        return seen

    with start_worker(app, pool="asyncio", concurrency=20):
        results = [whoami.delay() for _ in range(20)]
        seen = {r.id: r.get(timeout=RESULT_TIMEOUT) for r in results}
    assert all(ids == [task_id] * 5 for task_id, ids in seen.items())


def test_the_soft_time_limit_fails_a_task_that_does_not_catch_it(app: App) -> None:
    @app.task(soft_time_limit=0.2)
    async def dawdle() -> str:
        await asyncio.sleep(10)
        return "finished"

    with start_worker(app, pool="asyncio", concurrency=2):
        result = dawdle.delay()
        with pytest.raises(SoftTimeLimitExceeded, match="soft time limit"):
            result.get(timeout=RESULT_TIMEOUT)
    assert result.state == "FAILURE"


def test_a_task_that_catches_the_soft_time_limit_cleans_up_and_succeeds(app: App) -> None:
    @app.task(soft_time_limit=0.2)
    async def tidy() -> str:
        try:
            await asyncio.sleep(10)
        except SoftTimeLimitExceeded:
            await asyncio.sleep(0.05)  # cleaning up may await: the task is not cancelled
            return "cleaned up"
        return "finished"

    with start_worker(app, pool="asyncio", concurrency=2):
        assert tidy.delay().get(timeout=RESULT_TIMEOUT) == "cleaned up"


def test_a_sync_task_sees_the_soft_time_limit_in_its_thread(app: App) -> None:
    @app.task(soft_time_limit=0.2)
    def spin() -> str:
        try:
            while True:
                time.sleep(0.01)
        except SoftTimeLimitExceeded:
            return "cleaned up"

    with start_worker(app, pool="asyncio", concurrency=2):
        assert spin.delay().get(timeout=RESULT_TIMEOUT) == "cleaned up"


def test_the_hard_time_limit_stops_the_task_and_the_worker_goes_on(app: App) -> None:
    @app.task(time_limit=0.3)
    async def stuck() -> str:
        await asyncio.sleep(30)
        return "finished"

    @app.task
    async def ping() -> str:
        return "pong"

    with start_worker(app, pool="asyncio", concurrency=2):
        with pytest.raises(TimeLimitExceeded):
            stuck.delay().get(timeout=RESULT_TIMEOUT)
        assert ping.delay().get(timeout=RESULT_TIMEOUT) == "pong"


def test_revoke_with_terminate_cancels_a_running_async_task(app: App) -> None:
    started = threading.Event()

    @app.task
    async def long_wait() -> str:
        started.set()
        await asyncio.sleep(30)
        return "finished"

    with start_worker(app, pool="asyncio", concurrency=2):
        result = long_wait.delay()
        assert started.wait(RESULT_TIMEOUT)
        result.revoke(terminate=True)
        with pytest.raises(TaskRevokedError):
            result.get(timeout=RESULT_TIMEOUT)
    assert result.state == "REVOKED"


def test_a_warm_stop_lets_running_async_tasks_finish(app: App) -> None:
    started = threading.Event()

    @app.task
    async def finish_me() -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "done"

    with start_worker(app, pool="asyncio", concurrency=2):
        result = finish_me.delay()
        assert started.wait(RESULT_TIMEOUT)
    assert result.get(timeout=RESULT_TIMEOUT) == "done"

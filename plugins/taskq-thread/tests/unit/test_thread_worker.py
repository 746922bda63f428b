"""A real worker on the thread pool, in this process, on the memory:// broker."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from taskq import App
from taskq.errors import SoftTimeLimitExceeded
from taskq.testing import start_worker

# Seconds any single result may take.
RESULT_TIMEOUT = 20.0


@pytest.fixture
def app() -> Iterator[App]:
    url = f"memory://{uuid.uuid4().hex}"
    app = App("thread-test", broker=url, backend=url, read_config=False)
    yield app
    app.close()


def test_tasks_run_side_by_side_in_pool_threads(app: App) -> None:
    @app.task
    def nap(seconds: float) -> tuple[str, float, float]:
        start = time.time()
        time.sleep(seconds)
        return threading.current_thread().name, start, time.time()

    with start_worker(app, pool="thread", concurrency=4) as worker:
        assert worker.concurrency == 4
        results = [nap.delay(0.3) for _ in range(4)]
        spans = [r.get(timeout=RESULT_TIMEOUT) for r in results]
    assert max(start for _, start, _ in spans) < min(end for _, _, end in spans), "the naps should overlap"
    assert len({name for name, _, _ in spans}) == 4
    assert all(name.startswith("taskq-thread-") for name, _, _ in spans)


def test_the_threads_alias_selects_the_same_pool(app: App) -> None:
    @app.task
    def double(x: int) -> int:
        return 2 * x

    with start_worker(app, pool="threads", concurrency=2) as worker:
        assert worker.pool_name == "threads"
        assert [double.delay(i).get(timeout=RESULT_TIMEOUT) for i in range(3)] == [0, 2, 4]


def test_an_exception_is_reraised_by_get_with_its_type(app: App) -> None:
    @app.task
    def fail(message: str) -> None:
        raise LookupError(message)

    with start_worker(app, pool="thread", concurrency=2), pytest.raises(LookupError, match="boom"):
        fail.delay("boom").get(timeout=RESULT_TIMEOUT)


def test_each_concurrent_task_sees_its_own_request_id(app: App) -> None:
    @app.task(bind=True)
    def whoami(self) -> list[str | None]:  # type: ignore[no-untyped-def]
        seen = []
        for _ in range(5):
            seen.append(self.request.id)
            time.sleep(0.01)  # the other threads run in between
        return seen

    with start_worker(app, pool="thread", concurrency=8):
        results = [whoami.delay() for _ in range(16)]
        seen = {r.id: r.get(timeout=RESULT_TIMEOUT) for r in results}
    assert all(ids == [task_id] * 5 for task_id, ids in seen.items())


def test_the_soft_time_limit_fails_a_task_that_does_not_catch_it(app: App) -> None:
    @app.task(soft_time_limit=0.2)
    def dawdle() -> str:
        for _ in range(1000):
            time.sleep(0.01)
        return "finished"

    with start_worker(app, pool="thread", concurrency=2):
        result = dawdle.delay()
        with pytest.raises(SoftTimeLimitExceeded):
            result.get(timeout=RESULT_TIMEOUT)
    assert result.state == "FAILURE"


def test_a_task_that_catches_the_soft_time_limit_cleans_up_and_succeeds(app: App) -> None:
    @app.task(soft_time_limit=0.2)
    def tidy() -> str:
        try:
            for _ in range(1000):
                time.sleep(0.01)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "finished"

    with start_worker(app, pool="thread", concurrency=2):
        assert tidy.delay().get(timeout=RESULT_TIMEOUT) == "cleaned up"


def test_the_worker_warns_that_a_hard_limit_cannot_be_enforced(app: App, caplog: pytest.LogCaptureFixture) -> None:
    @app.task(time_limit=5)
    def bounded() -> str:
        return "ran"

    with caplog.at_level(logging.WARNING), start_worker(app, pool="thread", concurrency=1):
        assert bounded.delay().get(timeout=RESULT_TIMEOUT) == "ran"
    assert "hard time limit" in caplog.text
    assert "cannot enforce" in caplog.text


def test_an_async_def_task_runs_to_the_end_in_its_thread(app: App) -> None:
    @app.task
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01)
        return x + 1

    with start_worker(app, pool="thread", concurrency=2):
        assert fetch.delay(41).get(timeout=RESULT_TIMEOUT) == 42


def test_a_warm_stop_lets_running_tasks_finish(app: App) -> None:
    started = threading.Event()

    @app.task
    def finish_me() -> str:
        started.set()
        time.sleep(0.5)
        return "done"

    with start_worker(app, pool="thread", concurrency=2):
        result = finish_me.delay()
        assert started.wait(RESULT_TIMEOUT)
    assert result.get(timeout=RESULT_TIMEOUT) == "done"

"""Tasks for the end-to-end tests. Each appends a line to $E2E_LOG when it starts and ends,
so a test can count how often a task really ran, across processes."""

from __future__ import annotations

import os
import time

from taskq import App

app = App("e2e")


def _record(event: str, key: object) -> None:
    line = f"{event} {key} {os.getpid()}\n"
    with open(os.environ["E2E_LOG"], "a", encoding="utf-8") as log:
        log.write(line)


@app.task
def record(key: int) -> int:
    _record("ran", key)
    return key


@app.task(acks_late=True)
def slow(key: str, seconds: float) -> str:
    _record("start", key)
    time.sleep(seconds)
    _record("end", key)
    return key


@app.task
def slow_early(key: str, seconds: float) -> str:
    _record("start", key)
    time.sleep(seconds)
    _record("end", key)
    return key


@app.task(bind=True, max_retries=3, default_retry_delay=0.05)
def flaky(self, key: str) -> str:  # type: ignore[no-untyped-def]
    _record("try", key)
    if self.request.retries < 2:
        raise self.retry(exc=ConnectionError("not yet"))
    return key


# ---- Green pools (taskq-gevent, taskq-eventlet): tests/test_pool_green.py --------------


@app.task
def green_nap(key: str, seconds: float) -> str:
    """Sleeps with time.sleep, which the green pools' monkey-patching makes cooperative."""
    _record("start", key)
    time.sleep(seconds)
    _record("end", key)
    return key


@app.task(soft_time_limit=0.5)
def green_soft(key: str) -> str:
    """Catches its soft time limit and finishes cleanly."""
    from taskq.errors import SoftTimeLimitExceeded

    _record("start", key)
    try:
        time.sleep(30)
    except SoftTimeLimitExceeded:
        _record("soft", key)
        return "cleaned up"
    _record("end", key)
    return "not interrupted"


# ---- Thread and asyncio pools (taskq-thread, taskq-asyncio): tests/test_pool_thread_asyncio.py


@app.task(acks_late=True)
async def async_slow(key: str, seconds: float) -> str:
    """Sleeps with asyncio.sleep, so many of it share the asyncio pool's one event loop."""
    import asyncio

    _record("start", key)
    await asyncio.sleep(seconds)
    _record("end", key)
    return key


# ---- Prefork pool (taskq-prefork): tests/test_pool_prefork.py


@app.task(acks_late=True, reject_on_worker_lost=True)
def prefork_requeued(key: str, seconds: float) -> str:
    """Acks late and asks to be requeued when its pool process dies under it."""
    _record("start", key)
    time.sleep(seconds)
    _record("end", key)
    return key


@app.task(time_limit=1.0)
def prefork_stuck(key: str) -> str:
    """Sleeps far past its one-second hard time limit."""
    _record("start", key)
    time.sleep(60)
    _record("end", key)
    return key


@app.task(soft_time_limit=0.3)
def prefork_soft(key: str) -> str:
    """Catches its soft time limit and finishes cleanly, recording that it did."""
    from taskq.errors import SoftTimeLimitExceeded

    _record("start", key)
    try:
        time.sleep(30)
    except SoftTimeLimitExceeded:
        _record("soft", key)
        return "cleaned up"
    return "not interrupted"


# ---- Every pool with every broker: tests/test_matrix.py ------------------------------


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def mul(x: int, y: int) -> int:
    return x * y


@app.task
def tsum(values: list[int]) -> int:
    return sum(values)


@app.task
def collect(values: list[object]) -> list[object]:
    """A chord's body that returns its header's results; the run log counts its runs."""
    _record("body", "collect")
    return values


@app.task
def fail(message: str) -> None:
    """Raises ValueError(message), for the client's get() to raise again."""
    raise ValueError(message)


@app.task
async def async_add(x: int, y: int) -> int:
    """An ``async def`` task that awaits, so that the pool's way of running coroutines is used."""
    import asyncio

    await asyncio.sleep(0.01)
    return x + y


@app.task(bind=True)
def stamps(self, *_previous: object) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The stamps this task's message carried (any argument, a previous step's result, is ignored)."""
    return dict(self.request.stamps or {})

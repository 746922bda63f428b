"""The demo's tasks: quick ones, flaky ones that succeed on retry, and ones that fail."""

from __future__ import annotations

import time

from taskq import App

# No settings: the embedded default, a SQLite file (taskq.db) in the working directory.
app = App("demo")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def slow_square(x: int) -> int:
    time.sleep(0.05)
    return x * x


@app.task(bind=True, max_retries=3, default_retry_delay=0.2)
def flaky(self, n: int) -> str:  # type: ignore[no-untyped-def]
    """Fails on the first two attempts, then succeeds."""
    if self.request.retries < 2:
        raise self.retry(exc=ConnectionError(f"attempt {self.request.retries + 1} of item {n} failed"))
    return f"item {n} done after {self.request.retries} retries"


@app.task(autoretry_for=(TimeoutError,), retry_backoff=0.1, retry_jitter=False, max_retries=2)
def always_times_out(n: int) -> None:
    """Retried automatically with backoff, then fails for good."""
    raise TimeoutError(f"upstream for item {n} never answers")


@app.task
def divide(x: int, y: int) -> float:
    return x / y

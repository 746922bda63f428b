"""Tasks for tests/test_poison_and_cold_stop.py: a task that kills its own process, good
tasks that record each run, and a slow early-acked task to stop a worker in the middle of.

Each run appends "<event> <key> <pid>" to $E2E_LOG, as tests/e2e_app/tasks.py does.
"""

from __future__ import annotations

import os
import signal
import time

from taskq import App

app = App("poison")


def _record(event: str, key: object) -> None:
    with open(os.environ["E2E_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{event} {key} {os.getpid()}\n")


@app.task(acks_late=True)
def good(key: str) -> str:
    _record("ran", key)
    time.sleep(0.01)
    return key


@app.task(acks_late=True, reject_on_worker_lost=True)
def poison(key: str) -> None:
    """Kills the process it runs in: the worker's own on solo and thread, a child on prefork."""
    _record("start", key)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task
def nap(key: str, seconds: float) -> str:
    """Acknowledged early (the default), so a cold stop may lose it only while it runs."""
    _record("start", key)
    time.sleep(seconds)
    _record("end", key)
    return key

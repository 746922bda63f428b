"""The interop tasks as Celery 5 declares them (same names as the taskq module's)."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("interop", broker=os.environ["INTEROP_BROKER"], backend=os.environ["INTEROP_BACKEND"])
app.conf.task_default_queue = os.environ["INTEROP_QUEUE"]
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False
# the test's own remote control namespace: other tests' workers never answer its requests
app.conf.control_exchange = os.environ["INTEROP_CONTROL_EXCHANGE"]


@app.task(name="interop.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="interop.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(name="interop.flaky", bind=True, max_retries=3, default_retry_delay=0.2)
def flaky(self, key: str) -> str:  # type: ignore[no-untyped-def]
    if self.request.retries < 2:
        raise self.retry(exc=ConnectionError(f"{key} not yet"))
    return f"{key} after {self.request.retries}"


@app.task(name="interop.echo_request", bind=True)
def echo_request(self) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {"id": self.request.id, "retries": self.request.retries}


@app.task(name="interop.fail_custom")
def fail_custom(message: str) -> None:
    from interop_errors import InteropError

    raise InteropError(message)


@app.task(name="interop.mul")
def mul(x: int, y: int) -> int:
    return x * y


@app.task(name="interop.slow_add")
def slow_add(x: int, y: int) -> int:
    import time

    time.sleep(0.2)  # long enough for the other worker to take a share of a chord's header
    return x + y


@app.task(name="interop.listed")
def listed(values: list[int]) -> list[int]:
    return list(values)


@app.task(name="interop.total")
def total(values: list[int]) -> int:
    return sum(values)


@app.task(name="interop.on_error")
def on_error(task_id: str) -> str:
    return f"handled {task_id}"


@app.task(name="interop.stamps", bind=True)
def stamps(self, *_previous: object) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The stamps of this task's message, by name (a previous step's result is ignored)."""
    return dict(self.request.stamps or {})


@app.task(name="interop.mark", ignore_result=True)
def mark(path: str) -> None:
    """Append this side's name to ``path`` (a broadcast runs once on each worker)."""
    with open(path, "a", encoding="utf-8") as file:
        file.write("celery\n")

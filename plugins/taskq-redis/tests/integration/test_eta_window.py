"""ETA tasks the worker holds do not stop it from running the tasks due now behind them.

With ``delayed_delivery = false`` (queues Celery workers share) a task sent with a countdown
reaches the worker at once, and the worker keeps it in its timer until due. A solo worker's
prefetch window is 4: the ETAs it holds must not fill it.
"""

from __future__ import annotations

import threading
import time

import pytest

from taskq import App
from taskq.worker.worker import Worker

pytestmark = pytest.mark.integration

# Seconds to wait for something that should happen at once; the ETAs are further away.
DEADLINE = 10.0
# Seconds ahead the held tasks are due: within worker_eta_horizon (60 s), so they stay held.
ETA_AHEAD = 30.0


def test_held_etas_leave_the_prefetch_window_to_tasks_due_now(redis_url: str, prefix: str) -> None:
    options = {"global_keyprefix": prefix, "delayed_delivery": False}
    app = App(
        "eta-window",
        broker=redis_url,
        backend=redis_url,
        read_config=False,
        broker_transport_options=options,
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    ran: list[str] = []

    @app.task
    def job(label: str) -> str:
        ran.append(label)
        return label

    for number in range(8):  # twice the window
        job.apply_async((f"later-{number}",), countdown=ETA_AHEAD)
    now = job.delay("now")
    worker = Worker(app, pool="solo", prefetch_multiplier=4)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        assert now.get(timeout=DEADLINE) == "now"
        consumer = worker.consumer
        assert consumer is not None
        end = time.monotonic() + DEADLINE
        while len(consumer.timer) < 8:  # all eight held, none run yet
            assert time.monotonic() < end, f"the worker holds {len(consumer.timer)} of the 8 ETAs"
            time.sleep(0.02)
        assert ran == ["now"]
    finally:
        worker.stop()
        thread.join(DEADLINE)
        app.close()
    assert not thread.is_alive(), "the worker did not stop"

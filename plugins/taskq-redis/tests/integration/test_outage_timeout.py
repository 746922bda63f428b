"""A client's own timeout is honoured across a Redis outage, however long it lasts.

On a private redis-server the test stops and starts again: ``get(timeout=30)`` across a
5 s outage returns the result stored after the restart, even with the backend's own
retries cut to well under the outage; ``get(timeout=3)`` during an outage raises the
timeout error at about 3 s, neither earlier nor much later.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from taskq import App, states
from taskq.errors import TimeoutError

from ..conftest import RedisServer

pytestmark = pytest.mark.integration

OUTAGE = 5.0
# The backend's own retries after a lost connection: ~0.35 s in all, far under OUTAGE.
FEW_RETRIES = 2


def make_app(server: RedisServer, **options: object) -> App:
    url = f"redis://127.0.0.1:{server.port}/0"
    return App("outage", broker=url, backend=url, read_config=False, result_backend_transport_options=options)


def test_get_with_a_timeout_returns_the_result_stored_after_an_outage(private_redis: RedisServer) -> None:
    app = make_app(private_redis, retries=FEW_RETRIES)
    task_id = str(uuid.uuid4())
    result = app.AsyncResult(task_id)
    assert result.state == states.PENDING  # connected before the outage
    outcome: dict[str, object] = {}

    def wait() -> None:
        started = time.monotonic()
        try:
            outcome["value"] = result.get(timeout=30)
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    time.sleep(0.5)
    private_redis.kill()
    time.sleep(OUTAGE)
    private_redis.start()
    writer = make_app(private_redis)
    writer.backend.store_result(task_id, 42, states.SUCCESS)
    waiter.join(40)
    assert not waiter.is_alive()
    assert "error" not in outcome, outcome
    assert outcome["value"] == 42
    assert OUTAGE < float(outcome["elapsed"]) < 30  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [{}, {"retries": FEW_RETRIES}])
def test_get_during_an_outage_times_out_at_its_own_timeout(
    private_redis: RedisServer, options: dict[str, object]
) -> None:
    app = make_app(private_redis, **options)
    result = app.AsyncResult(str(uuid.uuid4()))
    assert result.state == states.PENDING
    private_redis.kill()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not answer") as info:
        result.get(timeout=3)
    elapsed = time.monotonic() - started
    assert 2.9 <= elapsed < 4.0, f"gave up after {elapsed:.2f}s: {info.value}"

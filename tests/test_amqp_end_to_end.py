"""A real worker on RabbitMQ with the rpc backend: results, retries, ETAs, unknown tasks.

Needs taskq-amqp and a pool (taskq-solo), so it lives here rather than in the plugin.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from e2e_helpers import AMQP_URL, require_rabbitmq

from taskq import App
from taskq.testing.worker import start_worker
from taskq_amqp.transport import AmqpTransport

# How long a result may take, in seconds.
DEADLINE = 20.0


@pytest.fixture
def broker_url() -> str:
    require_rabbitmq()
    return AMQP_URL


@pytest.fixture
def queue(broker_url: str) -> Iterator[str]:
    name = f"taskq-e2e-{uuid.uuid4().hex[:12]}"
    yield name
    transport = AmqpTransport(broker_url)
    transport.delete(name)
    transport.close()


@pytest.fixture
def app(broker_url: str, queue: str) -> Iterator[App]:
    app = App(
        "amqp-tests",
        read_config=False,
        broker_url=broker_url,
        result_backend="rpc://",
        task_default_queue=queue,
    )
    yield app
    app.close()


def test_result_comes_back_over_the_reply_queue(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, pool="solo"):
        results = [add.delay(i, i) for i in range(20)]
        assert [r.get(timeout=DEADLINE) for r in results] == [2 * i for i in range(20)]


def test_a_retried_task_answers_the_client_that_sent_it(app: App) -> None:
    @app.task(bind=True, max_retries=3)
    def flaky(self) -> str:  # type: ignore[no-untyped-def]
        if self.request.retries < 2:
            raise self.retry(countdown=0.1)
        return "done"

    with start_worker(app, pool="solo"):
        assert flaky.delay().get(timeout=DEADLINE) == "done"


def test_an_unknown_task_fails_for_its_client_and_is_dead_lettered(app: App, queue: str) -> None:
    with start_worker(app, pool="solo"):
        result = app.send_task("tests.nobody_has_this")
        with pytest.raises(Exception, match="nobody_has_this"):
            result.get(timeout=DEADLINE)
    reader = AmqpTransport(app.conf["broker_url"])  # type: ignore[arg-type]
    try:
        [dead] = reader.dead_letters(queue)
        assert "unknown task" in dead.reason
    finally:
        reader.close()


def test_a_countdown_task_runs_after_its_countdown(app: App) -> None:
    @app.task
    def stamp() -> float:
        return time.time()

    with start_worker(app, pool="solo"):
        sent = time.time()
        ran = stamp.apply_async(countdown=1.5).get(timeout=DEADLINE)
        assert ran >= sent + 1.5 - 0.05

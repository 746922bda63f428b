"""Broadcast queues on real brokers: a message sent once runs once on every worker consuming
the broadcast queue, and on no other, on the SQLite default, Redis and RabbitMQ."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from e2e_helpers import (
    AMQP_URL,
    delete_rabbitmq_queue,
    delete_redis_keys,
    redis_settings,
    require_rabbitmq,
    wait_until,
)

from taskq import App
from taskq.routing import Broadcast, Queue
from taskq.testing.worker import start_worker
from taskq.worker.worker import Worker

pytestmark = pytest.mark.integration

# How long the workers may take to subscribe and to run what was sent, in seconds.
DEADLINE = 20.0


@pytest.fixture(params=["sqlite", "redis", "rabbitmq"])
def names(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Unique names for one test on one broker; what the test made there is deleted after."""
    tag = uuid.uuid4().hex[:10]
    found = {"broker": request.param, "work": f"work-{tag}", "all": f"everyone-{tag}", "ns": f"bcast-{tag}"}
    if request.param == "sqlite":
        found["url"] = f"sqlite:///{tmp_path / 'broker.db'}"
    yield found
    if request.param == "redis":
        delete_redis_keys(f"{found['ns']}:")
    elif request.param == "rabbitmq":
        delete_rabbitmq_queue(found["work"])


def make_app(names: dict[str, str], runs: list[tuple[str, int]]) -> App:
    if names["broker"] == "redis":
        base = redis_settings(names["ns"])
    elif names["broker"] == "rabbitmq":
        require_rabbitmq()
        base = {"broker_url": AMQP_URL, "result_backend": "rpc://"}
    else:
        base = {"broker_url": names["url"], "result_backend": names["url"]}
    app = App(
        "broadcast-e2e",
        read_config=False,
        **base,
        task_default_queue=names["work"],
        task_queues=[Queue(names["work"]), Broadcast(names["all"])],
        task_routes={"bcast.reload": {"queue": names["all"]}},
        worker_enable_remote_control=False,
    )
    lock = threading.Lock()

    @app.task(name="bcast.reload", ignore_result=True)
    def reload(token: str) -> None:
        with lock:  # the solo pool runs a task in its worker's own thread
            runs.append((token, threading.get_ident()))

    return app


def own_queues(worker: Worker) -> list[str]:
    consumer = worker.consumer
    return [] if consumer is None else [q for q in consumer.queues if q.startswith("bcast.")]


def test_a_broadcast_runs_once_on_every_worker_consuming_it_and_on_no_other(names: dict[str, str]) -> None:
    runs: list[tuple[str, int]] = []
    app = make_app(names, runs)
    with ExitStack() as stack:
        consuming = [stack.enter_context(start_worker(app, pool="solo")) for _ in range(2)]
        stack.enter_context(start_worker(app, pool="solo", queues=[names["work"]]))  # not the broadcast queue
        wait_until(lambda: all(len(own_queues(w)) == 1 for w in consuming), DEADLINE, "both workers subscribed")
        assert len({own_queues(w)[0] for w in consuming}) == 2  # a queue of its own each

        app.tasks["bcast.reload"].delay("first")
        app.send_task("bcast.reload", ("last",), queue=names["all"])  # by queue name too
        wait_until(lambda: sum(token == "last" for token, _ in runs) == 2, DEADLINE, "both workers ran the last one")
    # Each queue is FIFO: once both ran the last broadcast, every copy of the first has run.
    firsts = [thread for token, thread in runs if token == "first"]
    lasts = [thread for token, thread in runs if token == "last"]
    assert len(firsts) == len(set(firsts)) == 2
    assert set(firsts) == set(lasts)
    app.close()


def test_a_worker_stopped_leaves_its_subscription_and_the_others_keep_theirs(names: dict[str, str]) -> None:
    runs: list[tuple[str, int]] = []
    app = make_app(names, runs)
    with start_worker(app, pool="solo") as staying:
        wait_until(lambda: len(own_queues(staying)) == 1, DEADLINE, "the first worker subscribed")
        with start_worker(app, pool="solo") as leaving:
            wait_until(lambda: len(own_queues(leaving)) == 1, DEADLINE, "the second worker subscribed")
            gone = own_queues(leaving)[0]
        app.tasks["bcast.reload"].delay("after")
        wait_until(lambda: len(runs) == 1, DEADLINE, "the staying worker ran it")
        transport = app.new_transport()
        try:
            if names["broker"] != "rabbitmq":  # RabbitMQ deleted the queue: nothing to count
                assert transport.depth(gone) == 0
        finally:
            transport.close()
    assert [token for token, _ in runs] == ["after"]
    app.close()

"""Routing on real brokers: sends through topic, direct and fanout exchanges reach a real
worker's queues on Redis and RabbitMQ, and the worker declares its bindings where Celery looks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from e2e_helpers import (
    AMQP_URL,
    REDIS_URL,
    delete_rabbitmq_queue,
    delete_redis_keys,
    redis_settings,
    require_rabbitmq,
)

from taskq import App
from taskq.errors import RoutingError
from taskq.routing import Exchange, Queue
from taskq.testing.worker import start_worker
from taskq_redis._layout import kombu_topic_pattern

pytestmark = pytest.mark.integration

# How long a result may take, in seconds.
DEADLINE = 20.0


@pytest.fixture(params=["redis", "rabbitmq"])
def names(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Unique names for one test on one broker; what the test made there is deleted after."""
    tag = uuid.uuid4().hex[:10]
    found = {
        "broker": request.param,
        "jobs": f"jobs-{tag}",
        "hi": f"hi-{tag}",
        "lo": f"lo-{tag}",
        "ns": f"routing-{tag}",
    }
    yield found
    if request.param == "redis":
        delete_redis_keys(f"{found['ns']}:")
    else:
        for queue in (found["hi"], found["lo"]):
            delete_rabbitmq_queue(queue)


def make_app(names: dict[str, str], **settings: object) -> App:
    if names["broker"] == "redis":
        base = redis_settings(names["ns"])
    else:
        require_rabbitmq()
        base = {"broker_url": AMQP_URL, "result_backend": "rpc://"}
    jobs = Exchange(names["jobs"], "topic")
    queues = [Queue(names["hi"], jobs, "jobs.hi.#"), Queue(names["lo"], jobs, "jobs.lo.*")]
    app = App("routing-e2e", read_config=False, **{**base, "task_queues": queues, **settings})

    @app.task(name="routing.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def test_a_send_through_a_topic_exchange_runs_on_the_worker_of_the_queue_it_reaches(names: dict[str, str]) -> None:
    app = make_app(names)
    add = app.tasks["routing.add"]
    with start_worker(app, pool="solo", queues=[names["lo"]]) as worker:
        assert worker.queues == [names["lo"]]
        result = add.apply_async((2, 3), exchange=names["jobs"], routing_key="jobs.lo.now")
        assert result.get(timeout=DEADLINE) == 5
    transport = app.new_transport()
    try:
        assert transport.depth(names["hi"]) == 0
    finally:
        transport.close()
    app.close()


def test_a_send_reaching_two_queues_puts_a_copy_in_each(names: dict[str, str]) -> None:
    jobs = Exchange(names["jobs"], "fanout")
    app = make_app(names, task_queues=[Queue(names["hi"], jobs), Queue(names["lo"], jobs)])
    app.send_task("routing.add", (1, 1), exchange=names["jobs"])
    transport = app.new_transport()
    try:
        assert (transport.depth(names["hi"]), transport.depth(names["lo"])) == (1, 1)
    finally:
        transport.close()
    app.close()


def test_a_send_reaching_no_queue_is_refused_before_anything_is_published(names: dict[str, str]) -> None:
    app = make_app(names)
    with pytest.raises(RoutingError, match="reaches no queue"):
        app.send_task("routing.add", exchange=names["jobs"], routing_key="nothing.here")
    app.close()


def test_a_worker_declares_its_bindings_where_celery_clients_look(names: dict[str, str]) -> None:
    app = make_app(names)
    with start_worker(app, pool="solo"):  # consuming declares them: once a task has run, they are there
        assert app.tasks["routing.add"].apply_async((1, 1), queue=names["hi"]).get(timeout=DEADLINE) == 2
    if names["broker"] == "redis":  # kombu's binding set, which a Celery client's topic lookup reads
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            members = client.smembers(f"{names['ns']}:_kombu.binding.{names['jobs']}")
        finally:
            client.close()
        sep = "\x06\x16"
        assert f"jobs.hi.#{sep}{kombu_topic_pattern('jobs.hi.#')}{sep}{names['hi']}".encode() in members
    else:  # a native topic exchange and binding: RabbitMQ routes a plain publish to the queue
        import amqp

        with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5) as conn:
            channel = conn.channel()
            channel.basic_publish(amqp.Message(b"{}"), exchange=names["jobs"], routing_key="jobs.hi.x")
            channel.close()
        transport = app.new_transport()
        try:
            assert transport.depth(names["hi"]) == 1
        finally:
            transport.close()
    app.close()

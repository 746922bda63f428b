"""The benchmark's actors for Dramatiq: ``dramatiq benchmarks.tasks_dramatiq`` imports this module.

The worker's broker is built at import from ``BENCH_DRAMATIQ_BROKER`` (a ``redis://`` or
``amqp://`` URL), its queue from ``BENCH_QUEUE``, and set as Dramatiq's global broker, as
Dramatiq's docs set one up. Results, for the actors that store them, go to Dramatiq's
Redis result backend (``BENCH_DRAMATIQ_RESULTS``): Dramatiq has no result backend on
RabbitMQ, only Redis and Memcached. The harness builds its own client broker per
measure with :func:`make_broker`; the module builds none when the variable is unset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import Broker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from benchmarks.marks import write_mark
from benchmarks.store_io import incr

NOOP = "bench_noop"
NOOP_IGNORED = "bench_noop_ignored"
IO = "bench_io"
IO_IGNORED = "bench_io_ignored"
BROKER_ENV = "BENCH_DRAMATIQ_BROKER"
RESULTS_ENV = "BENCH_DRAMATIQ_RESULTS"
QUEUE_ENV = "BENCH_QUEUE"


def make_broker(url: str, results_url: str, queue: str) -> tuple[Broker, dict[str, Any]]:
    """A broker on ``url`` with the Results middleware on ``results_url``, and its actors by name.

    ``actors["backend"]`` is the result backend, for ``message.get_result(backend=...)``.
    """
    broker: Broker
    if url.startswith("amqp"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url)
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    backend = RedisBackend(url=results_url)
    broker.add_middleware(Results(backend=backend))  # type: ignore[no-untyped-call]

    def noop(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    def io(mark: str | None = None) -> None:
        incr()
        if mark is not None:
            write_mark(mark)

    def declare(fn: Callable[[str | None], None], name: str, store_results: bool) -> Any:
        return dramatiq.actor(actor_name=name, queue_name=queue, broker=broker, store_results=store_results)(fn)

    actors = {
        NOOP: declare(noop, NOOP, True),
        NOOP_IGNORED: declare(noop, NOOP_IGNORED, False),
        IO: declare(io, IO, True),
        IO_IGNORED: declare(io, IO_IGNORED, False),
        "backend": backend,
    }
    return broker, actors


if os.environ.get(BROKER_ENV):
    broker, actors = make_broker(
        os.environ[BROKER_ENV], os.environ.get(RESULTS_ENV, os.environ[BROKER_ENV]), os.environ[QUEUE_ENV]
    )
    dramatiq.set_broker(broker)

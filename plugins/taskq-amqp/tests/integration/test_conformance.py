"""The RabbitMQ transport and the rpc result backend pass the conformance kit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq.testing.conformance import (
    BackendForkSafetyContract,
    MultiProcessTransportContract,
    ResultBackendContract,
    TransportForkSafetyContract,
)
from taskq_amqp.backend import RpcBackend
from taskq_amqp.transport import AmqpTransport


class TestAmqpTransport(MultiProcessTransportContract, TransportForkSafetyContract):
    @pytest.fixture
    def transport(self, broker_url: str, queue: str, event_exchange: str) -> Iterator[AmqpTransport]:
        # The kit expects exactly the events it sent: none of other workers on the broker.
        transport = AmqpTransport(broker_url, {"event_exchange": event_exchange})
        transport.connect()
        yield transport
        for name in (queue, queue + "-second"):
            transport.delete(name)
        transport.close()


class TestRpcBackend(ResultBackendContract, BackendForkSafetyContract):
    threads_share_one_instance = False  # one consumer of the reply queue per instance
    children_read_the_parents_results = False  # a forked child gets a reply queue of its own

    @pytest.fixture
    def backend(self, broker_url: str) -> Iterator[RpcBackend]:
        backend = RpcBackend("rpc://", broker_url=broker_url)
        yield backend
        backend.close()

"""The SQS transport passes the conformance kit, on moto's SQS API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq.testing.conformance import TransportContract, TransportForkSafetyContract
from taskq_sqs.transport import SQSTransport

pytestmark = pytest.mark.integration


class TestSQSTransport(TransportContract, TransportForkSafetyContract):
    @pytest.fixture
    def transport(self, sqs_url: str, sqs_options: dict[str, object]) -> Iterator[SQSTransport]:
        transport = SQSTransport(sqs_url, sqs_options)
        transport.connect()
        yield transport
        transport.close()

    # A short lease is one SQS second less the transport's half-second margin: a boto3
    # client made inside a lease-timed loop (about 0.3 s on a busy machine) would use up
    # most of it, so the second consumer and the twin connect before the test starts.

    @pytest.fixture
    def other(self, transport: SQSTransport) -> Iterator[SQSTransport]:
        second = SQSTransport(transport.url, transport.options)
        second.connect()
        yield second
        second.close()

    @pytest.fixture
    def twin(self, transport: SQSTransport) -> Iterator[SQSTransport]:
        clone = transport.clone()
        clone.connect()
        yield clone
        clone.close()

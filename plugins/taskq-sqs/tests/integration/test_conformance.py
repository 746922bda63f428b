"""The SQS transport passes the conformance kit, on moto's SQS API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq.testing.conformance import TransportContract
from taskq_sqs.transport import SQSTransport

pytestmark = pytest.mark.integration


class TestSQSTransport(TransportContract):
    @pytest.fixture
    def transport(self, sqs_url: str, sqs_options: dict[str, object]) -> Iterator[SQSTransport]:
        transport = SQSTransport(sqs_url, sqs_options)
        transport.connect()
        yield transport
        transport.close()

"""The rpc backend's revocation log: a RabbitMQ stream every worker reads from its own offset."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from taskq_amqp.backend import RpcBackend


@pytest.fixture
def backends(broker_url: str) -> Iterator[tuple[RpcBackend, RpcBackend]]:
    reader, writer = RpcBackend(broker_url), RpcBackend(broker_url)
    yield reader, writer
    reader.close()
    writer.close()


def test_a_reader_stays_attached_and_gets_each_new_revocation_once(backends: tuple[RpcBackend, RpcBackend]) -> None:
    reader, writer = backends
    _, cursor = reader.revocations_since(0)
    attached = reader._revocations._reader
    assert attached is not None
    channel_id = attached.channel.channel_id
    for round_ in range(3):
        task_id = str(uuid.uuid4())
        writer.revoke([task_id], terminate=bool(round_ % 2))
        found, cursor = reader.revocations_since(cursor)
        assert found == [(task_id, bool(round_ % 2))]
        assert reader._revocations._reader is attached and attached.channel.channel_id == channel_id  # no new channel
    assert reader.revocations_since(cursor) == ([], cursor)


def test_another_cursor_reads_the_log_again_from_there(backends: tuple[RpcBackend, RpcBackend]) -> None:
    reader, writer = backends
    _, start = reader.revocations_since(0)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    writer.revoke([first, second])
    found, cursor = reader.revocations_since(start)
    assert found == [(first, False), (second, False)]
    again, again_cursor = reader.revocations_since(start + 1)  # a worker whose state file is older
    assert again == [(second, False)]
    assert again_cursor == cursor


def test_a_reader_attaches_again_after_its_connection_was_lost(backends: tuple[RpcBackend, RpcBackend]) -> None:
    reader, writer = backends
    _, cursor = reader.revocations_since(0)
    assert reader._conn is not None
    reader._conn.sock.shutdown(socket.SHUT_RDWR)  # the connection drops, as on a broker restart
    task_id = str(uuid.uuid4())
    writer.revoke([task_id])
    found, _ = reader.revocations_since(cursor)
    assert found == [(task_id, False)]

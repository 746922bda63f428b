"""Broker URLs and options: what the transport connects to, and the errors that say why not."""

from __future__ import annotations

import pytest

from taskq.errors import ConfigError
from taskq_amqp._connection import parse_url
from taskq_amqp.backend import RpcBackend
from taskq_amqp.transport import AmqpTransport


def test_url_gives_host_port_credentials_and_virtual_host() -> None:
    params = parse_url("amqp://bob:s%40cret@rabbit.local:5673/prod%2Fa", {})
    assert (params.host, params.port, params.userid, params.password) == ("rabbit.local", 5673, "bob", "s@cret")
    assert params.virtual_host == "prod/a"
    assert not params.use_tls
    assert "s@cret" not in params.masked


def test_defaults_are_guest_on_the_default_virtual_host() -> None:
    params = parse_url("pyamqp://", {})
    assert (params.host, params.port, params.userid, params.virtual_host) == ("127.0.0.1", 5672, "guest", "/")
    assert parse_url("amqp://h//", {}).virtual_host == "/"


def test_amqps_means_tls_on_port_5671() -> None:
    params = parse_url("amqps://h", {"ssl": {"ca_certs": "/ca.pem"}})
    assert params.use_tls
    assert params.port == 5671
    assert params.tls == {"ca_certs": "/ca.pem"}


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ConfigError, match="amqp://"):
        parse_url("redis://localhost", {})


def test_quorum_queues_with_priorities_are_refused() -> None:
    with pytest.raises(ConfigError, match="quorum"):
        AmqpTransport("amqp://", {"queue_type": "quorum", "max_priority": 5})


def test_queue_arguments_follow_the_options() -> None:
    assert AmqpTransport("amqp://").queue_arguments() == {}
    assert AmqpTransport("amqp://", {"max_priority": 10}).queue_arguments() == {"x-max-priority": 10}
    assert AmqpTransport("amqp://", {"queue_type": "quorum"}).queue_arguments() == {"x-queue-type": "quorum"}


def test_unknown_confirm_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="batch"):
        AmqpTransport("amqp://", {"confirm_publish": "sometimes"})


def test_rpc_backend_needs_an_amqp_broker() -> None:
    with pytest.raises(ConfigError, match="amqp://"):
        RpcBackend("rpc://", broker_url="redis://localhost")
    assert RpcBackend("rpc://", broker_url="amqp://h:1234//").params.port == 1234
    assert RpcBackend("rpc://u:p@h2:5672/v").params.host == "h2"


def test_rpc_backend_without_a_broker_url_asks_for_one() -> None:
    with pytest.raises(ConfigError, match="given no broker_url; set broker_url"):
        RpcBackend("rpc://")

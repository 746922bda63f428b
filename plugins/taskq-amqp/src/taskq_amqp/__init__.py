"""taskq-amqp: the RabbitMQ transport (py-amqp) and the ``rpc`` result backend."""

from __future__ import annotations

__all__: list[str] = []

"""taskq-amqp as a plugin: a cheap plugin module offering the RabbitMQ transports and the rpc result backend."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestAmqpPlugin(PluginContract):
    entry_point = "amqp"
    distribution = "taskq-amqp"
    offers = {
        "result_backends": ["rpc"],
        "transports": ["amqp", "amqps", "pyamqp"],
    }

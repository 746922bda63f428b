"""taskq-sqs as a plugin: a cheap plugin module offering the sqs:// transport."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestSQSPlugin(PluginContract):
    entry_point = "sqs"
    distribution = "taskq-sqs"
    offers = {"transports": ["sqs"]}

"""taskq-dynamodb as a plugin: a cheap plugin module offering the dynamodb:// result backend."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestDynamoDBPlugin(PluginContract):
    entry_point = "dynamodb"
    distribution = "taskq-dynamodb"
    offers = {"result_backends": ["dynamodb"]}

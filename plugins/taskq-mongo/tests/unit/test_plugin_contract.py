"""taskq-mongo as a plugin: a cheap plugin module offering the mongodb:// result backend."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestMongoPlugin(PluginContract):
    entry_point = "mongo"
    distribution = "taskq-mongo"
    offers = {"result_backends": ["mongodb"]}

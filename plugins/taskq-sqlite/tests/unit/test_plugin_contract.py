"""taskq-sqlite as a plugin: a cheap plugin module offering the sqlite:// transport and result backend."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestSqlitePlugin(PluginContract):
    entry_point = "sqlite"
    distribution = "taskq-sqlite"
    offers = {
        "result_backends": ["sqlite"],
        "transports": ["sqlite"],
    }

"""taskq-filesystem as a plugin: a cheap plugin module offering the file:// transport and result backend."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestFilesystemPlugin(PluginContract):
    entry_point = "filesystem"
    distribution = "taskq-filesystem"
    offers = {
        "result_backends": ["file", "filesystem"],
        "transports": ["file", "filesystem"],
    }

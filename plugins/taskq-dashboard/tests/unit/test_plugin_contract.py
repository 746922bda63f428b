"""taskq-dashboard as a plugin: a cheap plugin module that offers the dashboard command."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestDashboardPlugin(PluginContract):
    entry_point = "dashboard"
    distribution = "taskq-dashboard"
    offers = {"commands": ["dashboard"]}

"""taskq-prometheus as a plugin: a cheap plugin module offering the metrics command and the worker step."""

from __future__ import annotations

import subprocess
import sys

from taskq.testing.conformance import PluginContract


class TestPrometheusPlugin(PluginContract):
    entry_point = "prometheus"
    distribution = "taskq-prometheus"
    offers = {"commands": ["metrics"]}


def test_importing_the_plugin_module_does_not_import_prometheus_client() -> None:
    code = "import sys, taskq_prometheus.plugin; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_the_settings_are_declared_with_their_defaults() -> None:
    from taskq.config import plugin_settings

    declared = plugin_settings()
    assert declared["prometheus_port"] is None
    assert declared["prometheus_address"] == "127.0.0.1"

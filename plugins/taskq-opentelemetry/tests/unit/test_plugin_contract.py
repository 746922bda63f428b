"""taskq-opentelemetry as a plugin: a cheap module (no OpenTelemetry import) that offers no driver."""

from __future__ import annotations

import subprocess
import sys

from taskq.testing.conformance import PluginContract


class TestOpenTelemetryPlugin(PluginContract):
    entry_point = "opentelemetry"
    distribution = "taskq-opentelemetry"
    offers: dict[str, list[str]] = {}


def test_importing_the_plugin_module_imports_nothing_of_opentelemetry() -> None:
    code = (
        "import sys, taskq_opentelemetry.plugin\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert output.stdout.strip() == "[]"

"""The plugin module registers both drivers by import string and imports neither."""

from __future__ import annotations

import importlib
import subprocess
import sys

from taskq_filesystem import plugin


def test_plugin_registers_file_and_filesystem_for_the_transport_and_backend() -> None:
    transports = plugin.taskq_register_transports()
    backends = plugin.taskq_register_result_backends()
    assert transports == {
        "file": "taskq_filesystem.transport:FilesystemTransport",
        "filesystem": "taskq_filesystem.transport:FilesystemTransport",
    }
    assert backends == {
        "file": "taskq_filesystem.backend:FilesystemBackend",
        "filesystem": "taskq_filesystem.backend:FilesystemBackend",
    }
    for target in (*transports.values(), *backends.values()):
        module, _, name = target.partition(":")
        assert hasattr(importlib.import_module(module), name)


def test_importing_the_plugin_module_does_not_import_the_drivers() -> None:
    code = (
        "import sys, taskq_filesystem.plugin\n"
        "loaded = [m for m in ('taskq_filesystem.transport', 'taskq_filesystem.backend') if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""

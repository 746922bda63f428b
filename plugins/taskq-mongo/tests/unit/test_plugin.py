"""The plugin module registers the backend by import string and imports nothing heavy."""

from __future__ import annotations

import importlib
import subprocess
import sys

from taskq_mongo import plugin


def test_plugin_registers_the_mongodb_backend() -> None:
    backends = plugin.taskq_register_result_backends()
    assert backends == {"mongodb": "taskq_mongo.backend:MongoBackend"}
    module, _, name = backends["mongodb"].partition(":")
    assert hasattr(importlib.import_module(module), name)


def test_importing_the_plugin_module_does_not_import_the_backend_or_pymongo() -> None:
    code = (
        "import sys, taskq_mongo.plugin\n"
        "print(','.join(m for m in ('taskq_mongo.backend', 'pymongo', 'bson') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""

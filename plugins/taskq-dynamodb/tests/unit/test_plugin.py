"""The plugin module registers the dynamodb:// backend and stays cheap to import."""

from __future__ import annotations

import subprocess
import sys

from taskq_dynamodb import plugin


def test_plugin_registers_the_dynamodb_result_backend() -> None:
    assert plugin.taskq_register_result_backends() == {"dynamodb": "taskq_dynamodb.backend:DynamoDBBackend"}


def test_importing_the_plugin_does_not_import_boto3() -> None:
    code = "import sys, taskq_dynamodb.plugin; sys.exit('boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

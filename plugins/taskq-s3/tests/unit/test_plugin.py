"""The plugin module registers the s3:// backend and stays cheap to import."""

from __future__ import annotations

import subprocess
import sys

from taskq_s3 import plugin


def test_plugin_registers_the_s3_result_backend() -> None:
    assert plugin.taskq_register_result_backends() == {"s3": "taskq_s3.backend:S3Backend"}


def test_importing_the_plugin_does_not_import_boto3() -> None:
    code = "import sys, taskq_s3.plugin; sys.exit('boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

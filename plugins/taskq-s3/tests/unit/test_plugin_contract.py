"""taskq-s3 as a plugin: a cheap plugin module offering the s3:// result backend."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestS3Plugin(PluginContract):
    entry_point = "s3"
    distribution = "taskq-s3"
    offers = {"result_backends": ["s3"]}

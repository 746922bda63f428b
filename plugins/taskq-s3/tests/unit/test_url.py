"""s3:// URLs name a bucket and a prefix."""

from __future__ import annotations

import pytest

from taskq.errors import ConfigError
from taskq_s3.backend import parse_url


def test_bucket_and_prefix_are_read_from_the_url() -> None:
    assert parse_url("s3://my-bucket/taskq/results/") == ("my-bucket", "taskq/results/")


def test_no_prefix_means_the_bucket_root() -> None:
    assert parse_url("s3://my-bucket") == ("my-bucket", "")


def test_a_url_without_a_bucket_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="s3://my-bucket/results"):
        parse_url("s3:///results")

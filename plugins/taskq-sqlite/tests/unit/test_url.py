"""SQLite URLs name files relative to the current directory or absolute."""

from __future__ import annotations

import os

import pytest

from taskq.errors import ConfigError
from taskq_sqlite._database import path_from_url


def test_three_slashes_name_a_file_relative_to_the_current_directory() -> None:
    assert path_from_url("sqlite:///taskq.db") == os.path.join(os.getcwd(), "taskq.db")
    assert path_from_url("sqlite:///data/q.db") == os.path.join(os.getcwd(), "data", "q.db")


def test_four_slashes_name_an_absolute_path() -> None:
    assert path_from_url("sqlite:////var/lib/taskq/taskq.db") == "/var/lib/taskq/taskq.db"


def test_a_query_string_is_ignored() -> None:
    assert path_from_url("sqlite:////tmp/q.db?mode=rw") == "/tmp/q.db"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db"])
def test_a_url_without_a_file_is_a_config_error_that_shows_the_right_form(url: str) -> None:
    with pytest.raises(ConfigError, match=r"sqlite:///taskq\.db"):
        path_from_url(url)


def test_another_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not an SQLite URL"):
        path_from_url("redis://localhost")

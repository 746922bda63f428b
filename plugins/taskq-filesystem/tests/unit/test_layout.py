"""URLs name the root directory; queue names and keys become safe file names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskq.errors import ConfigError
from taskq_filesystem._layout import MAX_NAME, file_name, root_from_url, write_atomically


def test_three_slashes_name_an_absolute_directory() -> None:
    assert root_from_url("file:///var/lib/taskq") == "/var/lib/taskq"
    assert root_from_url("filesystem:///var/lib/taskq/") == "/var/lib/taskq"


def test_two_slashes_name_a_directory_relative_to_the_current_one() -> None:
    assert root_from_url("file://taskq-data") == os.path.join(os.getcwd(), "taskq-data")
    assert root_from_url("file://data/queues") == os.path.join(os.getcwd(), "data", "queues")


def test_a_tilde_starts_at_the_home_directory() -> None:
    assert root_from_url("file://~/taskq") == os.path.join(os.path.expanduser("~"), "taskq")


def test_a_query_string_is_ignored() -> None:
    assert root_from_url("file:///tmp/q?anything=1") == "/tmp/q"


def test_filesystem_without_a_path_takes_celerys_data_folder_options() -> None:
    options = {"data_folder_in": "/srv/q", "data_folder_out": "/srv/q"}
    assert root_from_url("filesystem://", options) == "/srv/q"
    assert root_from_url("filesystem://", {"data_folder": "/srv/r"}) == "/srv/r"


def test_different_in_and_out_folders_are_a_config_error_that_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="data_folder ="):
        root_from_url("filesystem://", {"data_folder_in": "/a", "data_folder_out": "/b"})


@pytest.mark.parametrize("url", ["file://", "file:///", "filesystem://"])
def test_a_url_without_a_directory_is_a_config_error_that_shows_the_right_form(url: str) -> None:
    with pytest.raises(ConfigError, match=r"file:///var/lib/taskq"):
        root_from_url(url)


def test_another_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a filesystem URL"):
        root_from_url("redis://localhost")


@pytest.mark.parametrize("name", ["celery", "a/b", "..", ".hidden", "", "gr\u00fc\u00df", "x" * 400, "a b*?"])
def test_every_name_becomes_one_safe_visible_file_name(name: str) -> None:
    safe = file_name(name)
    assert safe and "/" not in safe and not safe.startswith(".")
    assert len(safe) <= MAX_NAME


def test_different_names_get_different_file_names() -> None:
    names = ["a/b", "a%2Fb", ".x", "%2Ex", "x" * 400, "x" * 401]
    assert len({file_name(n) for n in names}) == len(names)


def test_an_atomic_write_leaves_only_the_target_with_fsync_or_without(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    for fsync in (False, True):
        target = tmp_path / f"value-{fsync}"
        write_atomically(str(tmp_path / "tmp"), str(target), b"payload", fsync=fsync)
        assert target.read_bytes() == b"payload"
    assert list((tmp_path / "tmp").iterdir()) == []

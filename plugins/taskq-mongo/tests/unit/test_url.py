"""The database a mongodb:// URL names."""

from __future__ import annotations

from taskq_mongo.backend import DEFAULT_DATABASE, database_name


def test_the_path_names_the_database() -> None:
    assert database_name("mongodb://user:pw@db.local:27017/results?authSource=admin") == "results"


def test_no_path_gives_the_default_database() -> None:
    assert database_name("mongodb://db.local") == DEFAULT_DATABASE
    assert database_name("mongodb://db.local/") == DEFAULT_DATABASE

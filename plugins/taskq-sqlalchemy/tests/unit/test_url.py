"""Celery's ``db+`` URLs become SQLAlchemy URLs with the drivers the extras install."""

from __future__ import annotations

import pytest

from taskq.errors import ConfigError
from taskq_sqlalchemy.backend import sqlalchemy_url


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("db+postgresql://u:p@h/db", "postgresql+psycopg"),
        ("db+postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("db+postgresql+psycopg2://u@h/db", "postgresql+psycopg2"),
        ("db+mysql://root@h/db", "mysql+pymysql"),
        ("db+mysql+pymysql://root@h/db", "mysql+pymysql"),
        ("db+mariadb://root@h/db", "mariadb+pymysql"),
        ("db+sqlite:///results.db", "sqlite"),
    ],
)
def test_db_prefix_is_stripped_and_the_default_driver_chosen(url: str, driver: str) -> None:
    assert sqlalchemy_url(url).drivername == driver


def test_a_database_other_than_the_three_is_refused() -> None:
    with pytest.raises(ConfigError, match="supports postgresql, mysql, mariadb, sqlite"):
        sqlalchemy_url("db+oracle://scott:tiger@h/db")


def test_an_unreadable_url_is_refused_with_examples_and_no_password() -> None:
    with pytest.raises(ConfigError, match="db\\+postgresql://user:password@host/dbname") as caught:
        sqlalchemy_url("db+not a url")
    assert "secret" not in str(caught.value)

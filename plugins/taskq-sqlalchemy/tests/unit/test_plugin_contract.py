"""taskq-sqlalchemy as a plugin: a cheap plugin module, the database backend, its commands, beat's scheduler."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestSQLAlchemyPlugin(PluginContract):
    entry_point = "sqlalchemy"
    distribution = "taskq-sqlalchemy"
    offers = {
        "commands": ["cleanup", "db"],
        "result_backends": [
            "db+mariadb",
            "db+mariadb+pymysql",
            "db+mysql",
            "db+mysql+mysqldb",
            "db+mysql+pymysql",
            "db+postgresql",
            "db+postgresql+psycopg",
            "db+postgresql+psycopg2",
            "db+sqlite",
            "db+sqlite+pysqlite",
        ],
        "schedulers": ["database"],
    }

    def test_every_db_scheme_selects_the_one_database_backend(self) -> None:
        assert set(self.offered()["result_backends"].values()) == {"taskq_sqlalchemy.backend:DatabaseBackend"}

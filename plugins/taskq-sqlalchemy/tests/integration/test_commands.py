"""``taskq db upgrade`` and ``taskq cleanup`` through the real ``taskq`` command."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from taskq.cli.main import cli
from taskq_sqlalchemy.backend import DatabaseBackend


def _has_table(backend: DatabaseBackend) -> bool:
    with backend.engine.connect() as connection:
        return sa.inspect(connection).has_table(backend.table_name)


def test_db_upgrade_creates_the_table_once(db_url: str, table_name: str, drop_table: None) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["db", "upgrade", "--url", db_url, "--table", table_name])
    assert first.exit_code == 0, first.output
    assert f"table {table_name} created" in first.output
    second = runner.invoke(cli, ["db", "upgrade", "--url", db_url, "--table", table_name])
    assert second.exit_code == 0, second.output
    assert "already present" in second.output
    backend = DatabaseBackend(db_url, table=table_name)
    assert _has_table(backend)
    backend.close()


def test_db_upgrade_reads_the_backend_from_the_config_file(
    db_url: str, table_name: str, drop_table: None, tmp_path: Path
) -> None:
    config = tmp_path / "taskq.toml"
    config.write_text(
        f'broker_url = "memory://"\nresult_backend = "{db_url}"\n'
        f'result_backend_transport_options = {{ table = "{table_name}" }}\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"table {table_name} created" in result.output


def test_cleanup_deletes_expired_rows_and_keeps_the_rest(db_url: str, table_name: str, drop_table: None) -> None:
    backend = DatabaseBackend(db_url, {"table": table_name, "cleanup_interval": 0})
    backend.set("expiring", b"x", expires=0.01)
    backend.set("kept", b"y")
    backend.set("later", b"z", expires=3600)
    time.sleep(0.05)  # past the 10 ms expiry: the deadline is the point of the test
    result = CliRunner().invoke(cli, ["cleanup", "--url", db_url, "--table", table_name])
    assert result.exit_code == 0, result.output
    assert "deleted 1 expired rows" in result.output
    with backend.engine.connect() as connection:
        keys = set(connection.execute(sa.select(backend.table.c.key)).scalars())
    assert keys == {"kept", "later"}
    backend.close()


def test_cleanup_of_a_backend_that_is_not_a_database_one_says_so(tmp_path: Path) -> None:
    config = tmp_path / "taskq.toml"
    config.write_text('broker_url = "memory://"\nresult_backend = "memory://"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "cleanup"])
    assert result.exit_code != 0
    assert "not a database (db+...) one" in result.output

"""An unreachable database gives one clear line; a dropped connection is recovered."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from taskq import states
from taskq.errors import BackendUnavailableError
from taskq_sqlalchemy.backend import DatabaseBackend


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("db+postgresql://postgres:secret@127.0.0.1:1/test", "psql 'postgresql://postgres:***@127.0.0.1:1/test'"),
        ("db+mysql+pymysql://root:secret@127.0.0.1:1/test", "mariadb -h 127.0.0.1 -P 1 -u root"),
    ],
)
def test_an_unreachable_server_at_start_names_the_masked_url_and_what_to_check(url: str, advice: str) -> None:
    backend = DatabaseBackend(url)
    with pytest.raises(BackendUnavailableError, match="cannot reach the result database at") as caught:
        backend.get_task_meta("x")
    message = str(caught.value)
    assert "secret" not in message
    assert ":****@127.0.0.1:1" in message
    assert advice in message
    assert "\n" not in message


def test_a_postgresql_connection_killed_by_the_server_is_replaced(postgresql_url: str, table_name: str) -> None:
    backend = DatabaseBackend(postgresql_url, {"table": table_name})
    try:
        backend.store_result("a", 1, states.SUCCESS)
        with backend.engine.connect() as connection:
            own_pid = connection.execute(sa.text("select pg_backend_pid()")).scalar_one()
        killer = sa.create_engine(backend.db_url)
        with killer.connect() as connection:
            others = connection.execute(
                sa.text("select pg_terminate_backend(pid) from pg_stat_activity where pid = :pid"), {"pid": own_pid}
            ).scalars()
            assert list(others) == [True]
        killer.dispose()
        assert backend.get_task_meta("a")["result"] == 1
        backend.store_result("b", 2, states.SUCCESS)
        assert backend.get_task_meta("b")["result"] == 2
    finally:
        backend.drop_tables()
        backend.close()

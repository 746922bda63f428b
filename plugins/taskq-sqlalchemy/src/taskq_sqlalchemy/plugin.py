"""taskq-sqlalchemy's plugin module: the ``db+...://`` result backend, its commands, beat's scheduler.

Cheap to import: SQLAlchemy and the database drivers load only when a ``db+`` URL
selects the backend, one of the commands runs or beat selects ``--scheduler database``.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl

#: The URL schemes Celery's database backend accepts (``db+`` and a SQLAlchemy URL).
SCHEMES = (
    "db+postgresql",
    "db+postgresql+psycopg",
    "db+postgresql+psycopg2",
    "db+mysql",
    "db+mysql+pymysql",
    "db+mysql+mysqldb",
    "db+mariadb",
    "db+mariadb+pymysql",
    "db+sqlite",
    "db+sqlite+pysqlite",
)


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    return dict.fromkeys(SCHEMES, "taskq_sqlalchemy.backend:DatabaseBackend")


@hookimpl
def taskq_register_commands() -> dict[str, str]:
    return {"db": "taskq_sqlalchemy.commands:db", "cleanup": "taskq_sqlalchemy.commands:cleanup"}


@hookimpl
def taskq_register_schedulers() -> dict[str, str]:
    return {"database": "taskq_sqlalchemy.scheduler:DatabaseScheduler"}

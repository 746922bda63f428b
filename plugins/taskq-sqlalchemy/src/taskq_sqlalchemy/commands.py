"""``taskq db upgrade`` and ``taskq cleanup``: the database backend's table from the command line.

Both act on the configured result backend (``result_backend`` in taskq.toml, or ``-A``'s
app), or on ``--url`` when given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from taskq.drivers.support.connections import mask_url
from taskq.errors import ConfigError

if TYPE_CHECKING:
    from taskq_sqlalchemy.backend import DatabaseBackend

url_option = click.option("--url", help="Database URL (default: the app's result_backend), e.g. db+postgresql://...")
table_option = click.option("--table", help="Table name (default: the backend's table option, else taskq_results).")


def _backend(ctx: click.Context, url: str | None, table: str | None) -> DatabaseBackend:
    from taskq_sqlalchemy.backend import DatabaseBackend

    if url is not None:
        return DatabaseBackend(url, table=table)
    app = getattr(ctx.find_root().obj, "app", None)
    if app is None:
        raise ConfigError("no app to read result_backend from; pass --url db+postgresql://...")
    backend = app.new_backend()
    if not isinstance(backend, DatabaseBackend):
        backend.close()
        raise ConfigError(
            f"the result backend {mask_url(str(app.backend_url))!r} is not a database (db+...) one; "
            f"set result_backend = 'db+postgresql://...' in taskq.toml or pass --url"
        )
    if table is not None:
        backend = DatabaseBackend(backend.url, backend.options, expires=backend.expires, table=table)
    return backend


@click.group()
def db() -> None:
    """Manage the database result backend's table."""


@db.command()
@url_option
@table_option
@click.pass_context
def upgrade(ctx: click.Context, url: str | None, table: str | None) -> None:
    """Create the results table (and its index) if it is missing."""
    backend = _backend(ctx, url, table)
    try:
        created = backend.create_tables()
    finally:
        backend.close()
    done = "created" if created else "already present"
    click.echo(f"table {backend.table_name} {done} in {backend.masked_url}")


@click.command()
@url_option
@table_option
@click.pass_context
def cleanup(ctx: click.Context, url: str | None, table: str | None) -> None:
    """Delete expired results, groups and counters from the database result backend."""
    backend = _backend(ctx, url, table)
    try:
        deleted = backend.cleanup()
    finally:
        backend.close()
    click.echo(f"deleted {deleted} expired rows from {backend.table_name} in {backend.masked_url}")

"""``taskq dashboard``: serve the web dashboard of the app ``-A`` names."""

from __future__ import annotations

import logging

import click

from taskq.drivers.cli import app_option, command_app
from taskq.errors import ConfigError
from taskq_dashboard.cluster import INSPECT_INTERVAL


@click.command()
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=5555, show_default=True, help="Port to listen on.")
@click.option(
    "--auth",
    "kinds",
    type=click.Choice(["token", "basic"]),
    multiple=True,
    help="Authentication to require (repeat for both); default: each credential given.",
)
@click.option("--token", envvar="TASKQ_DASHBOARD_TOKEN", help="The token (bearer header or login form).")
@click.option(
    "--basic-auth",
    "basic",
    envvar="TASKQ_DASHBOARD_BASIC_AUTH",
    metavar="USER:PASSWORD",
    help="Basic auth credentials.",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    help="The SQLite file keeping the task history across restarts (setting dashboard_db; taskq-dashboard.db).",
)
@click.option(
    "--max-tasks",
    type=click.IntRange(min=1),
    help="Most tasks kept in the history, the oldest going first (setting dashboard_max_tasks; 100000).",
)
@click.option(
    "--inspect-interval",
    type=click.FloatRange(min=0.1),
    default=INSPECT_INTERVAL,
    show_default=True,
    help="Seconds between two rounds of remote control questions to the workers.",
)
@click.option("-l", "--loglevel", default="info", show_default=True, help="Log level.")
@app_option
@click.pass_context
def dashboard(
    ctx: click.Context,
    address: str,
    port: int,
    kinds: tuple[str, ...],
    token: str | None,
    basic: str | None,
    db_path: str | None,
    max_tasks: int | None,
    inspect_interval: float,
    loglevel: str,
) -> None:
    """Serve the web dashboard: workers, queues, tasks with their history, charts, and actions."""
    from taskq_dashboard.auth import Auth, check_exposure
    from taskq_dashboard.dashboard import Dashboard, serve

    if not token and not basic:
        check_exposure(address, Auth.from_options(kinds, token, basic))  # before the app is even loaded
    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s: %(levelname)s] %(message)s")
    app = command_app(ctx)
    conf = app.conf
    auth = Auth.from_options(
        kinds, token or _text(conf["dashboard_token"]), basic or _text(conf["dashboard_basic_auth"])
    )
    check_exposure(address, auth)
    board = Dashboard(
        app,
        db_path or str(conf["dashboard_db"]),
        max_tasks=max_tasks or _positive(conf["dashboard_max_tasks"]),
        auth=auth,
        inspect_interval=inspect_interval,
    )
    serve(board, address, port, log_level=loglevel.lower())


def _text(value: object) -> str | None:
    return str(value) if value else None


def _positive(value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"dashboard_max_tasks must be a whole number of at least 1, not {value!r}")
    return number

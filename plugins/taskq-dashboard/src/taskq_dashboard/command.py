"""``taskq dashboard``: serve the web dashboard of the app ``-A`` names."""

from __future__ import annotations

import logging

import click

from taskq.cli.commands import app_option
from taskq.cli.state import CLIState
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
    envvar="TASKQ_DASHBOARD_DB",
    default="taskq-dashboard.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The SQLite file keeping the task history across restarts.",
)
@click.option(
    "--max-tasks",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Most tasks kept in the history (the oldest go first).",
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
    db_path: str,
    max_tasks: int,
    inspect_interval: float,
    loglevel: str,
) -> None:
    """Serve the web dashboard: workers, queues, tasks with their history, charts, and actions."""
    from taskq_dashboard.auth import Auth, check_exposure
    from taskq_dashboard.dashboard import Dashboard, serve

    auth = Auth.from_options(kinds, token, basic)
    check_exposure(address, auth)  # before the app is even loaded
    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s: %(levelname)s] %(message)s")
    state = ctx.find_root().obj
    assert isinstance(state, CLIState)
    board = Dashboard(state.app, db_path, max_tasks=max_tasks, auth=auth, inspect_interval=inspect_interval)
    serve(board, address, port, log_level=loglevel.lower())

"""What a plugin's command (``taskq_register_commands``) uses of the ``taskq`` command.

A plugin adds a click command; it takes ``-A`` after its name as core's commands do, and
reaches the app that names (or the config file's) through the ``taskq`` command's state:

.. code-block:: python

    import click
    from taskq.drivers.cli import app_option, command_app

    @click.command()
    @app_option
    @click.pass_context
    def report(ctx: click.Context) -> None:
        app = command_app(ctx)
        ...

The app is loaded once for the whole command line, after ``taskq_cli_app_loaded``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from taskq.cli.commands import app_option
from taskq.cli.state import CLIState

if TYPE_CHECKING:
    from taskq.app import App


def command_app(ctx: click.Context) -> App:
    """The app of the ``taskq`` command line ``ctx`` belongs to.

    Raises:
        click.UsageError: the command was not started by ``taskq`` (called on its own).
    """
    state = ctx.find_root().obj
    if not isinstance(state, CLIState):
        raise click.UsageError(f"{ctx.command_path} runs as a taskq command: taskq -A proj {ctx.info_name} ...")
    return state.app


__all__ = ["app_option", "command_app"]

"""taskq.drivers.cli: what a plugin's command uses of the taskq command line (-A and its app)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from taskq.cli.commands import cli
from taskq.drivers.cli import app_option, command_app


@click.command()
@app_option
@click.pass_context
def show(ctx: click.Context) -> None:
    click.echo(f"app={command_app(ctx).main}")


def test_a_plugin_command_gets_the_app_its_a_option_names(tmp_path, monkeypatch) -> None:
    (tmp_path / "cliproj.py").write_text("from taskq import App\napp = App('cliproj', broker='memory://')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cli.add_command(show, "show-app")
    try:
        result = CliRunner().invoke(cli, ["show-app", "-A", "cliproj"], catch_exceptions=False)
    finally:
        cli.commands.pop("show-app", None)
    assert result.output.strip() == "app=cliproj", result.output


def test_a_plugin_command_run_on_its_own_says_how_to_run_it() -> None:
    result = CliRunner().invoke(show, [])
    assert result.exit_code == 2
    assert "runs as a taskq command: taskq -A proj show" in result.output

"""The plugin offers the ``taskq dashboard`` command, and the command refuses bad options before serving."""

from __future__ import annotations

from click.testing import CliRunner

from taskq.cli.commands import cli
from taskq_dashboard import plugin


def test_the_plugin_registers_the_dashboard_command() -> None:
    assert plugin.taskq_register_commands() == {"dashboard": "taskq_dashboard.command:dashboard"}


def test_taskq_lists_the_dashboard_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "dashboard" in result.output


def test_an_open_dashboard_on_every_address_is_refused() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--address", "0.0.0.0"], env={"TASKQ_DASHBOARD_TOKEN": None})
    assert result.exit_code != 0
    assert "refusing to serve the dashboard on 0.0.0.0 without authentication" in result.output
    assert "TASKQ_DASHBOARD_TOKEN" in result.output


def test_the_plugin_declares_its_settings() -> None:
    from taskq.config import plugin_settings

    assert {"dashboard_token", "dashboard_basic_auth", "dashboard_db", "dashboard_max_tasks"} <= set(plugin_settings())


def test_the_public_names_load_on_first_use() -> None:
    import taskq_dashboard
    from taskq_dashboard.dashboard import Dashboard

    assert taskq_dashboard.Dashboard is Dashboard
    assert sorted(taskq_dashboard.__all__) == ["Auth", "Dashboard", "Store", "serve"]

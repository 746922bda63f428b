"""Routes from other distributions (a ``/metrics`` from taskq-prometheus, say): found through the
``taskq_dashboard.routes`` entry points and served behind the dashboard's authentication."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from dashboard_helpers import Client, served

from taskq import App
from taskq_dashboard.auth import Auth
from taskq_dashboard.dashboard import Dashboard
from taskq_dashboard.web import create_app, plugin_routes

pytestmark = pytest.mark.integration

PLUGIN = """
def routes(dashboard):
    seen = []
    dashboard.listen(seen.append)

    def metrics():
        kept = sum(dashboard.store.count_by_state().values())
        return f"taskq_tasks_kept {kept}\\ntaskq_events_seen {len(seen)}\\n".encode(), "text/plain; version=0.0.4"

    def failing():
        raise RuntimeError("this route is broken")

    return {"/metrics": metrics, "/failing": failing, "/api/tasks": metrics, "/nothing": None}


def not_a_mapping(dashboard):
    return ["/metrics"]
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution installed in tmp_path (on sys.path): one good entry point, one broken."""
    (tmp_path / "dash_metrics_plugin.py").write_text(PLUGIN, encoding="utf-8")
    info = tmp_path / "dash_metrics_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dash-metrics-plugin\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[taskq_dashboard.routes]\nmetrics = dash_metrics_plugin:routes\nbroken = dash_metrics_plugin:missing\n"
        "odd = dash_metrics_plugin:not_a_mapping\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_plugins_route_is_served_behind_the_token(
    installed_plugin: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    board = Dashboard(App("routes", broker="memory://", read_config=False), str(tmp_path / "h.db"), auth=Auth("tok"))
    with caplog.at_level(logging.ERROR, logger="taskq_dashboard.web"):
        routes = plugin_routes(board)
    # the dashboard's own paths and a handler that cannot be called are left out, and logged
    assert [getattr(route, "path", None) for route in routes] == ["/metrics", "/failing"]
    assert "dash_metrics_plugin:missing" in caplog.text  # the broken one is logged and left out
    assert "dash_metrics_plugin:not_a_mapping" in caplog.text
    assert "'/api/tasks'" in caplog.text and "/nothing" in caplog.text
    board.ingest.take({"type": "worker-online", "hostname": "w1@h", "timestamp": 1.0, "clock": 1})
    board.ingest.take({"type": "nonsense"})  # not given to the listener: it did not check out
    with served(create_app(board, routes)) as url:
        assert Client(url).get("/metrics").status == 401
        reply = Client(url, token="tok").get("/metrics")
        assert reply.status == 200
        assert reply.body == "taskq_tasks_kept 0\ntaskq_events_seen 1\n"
        assert Client(url, token="tok").get("/failing").status == 500

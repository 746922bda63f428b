"""The history survives a restart of the dashboard: tasks seen before are there after, with their events."""

from __future__ import annotations

import uuid

import pytest
from dashboard_helpers import TOKEN, Client, LiveCluster, start_dashboard, stop, wait_until

pytestmark = pytest.mark.integration


def test_tasks_seen_before_a_restart_are_there_after_it(cluster: LiveCluster) -> None:
    db = cluster.folder / f"restart-{uuid.uuid4().hex}.db"
    args = ("--token", TOKEN, "--max-tasks", "1000")
    first, url = start_dashboard(cluster.folder, cluster.env, db, *args, log_name="before")
    try:
        client = Client(url, TOKEN)
        ids = [cluster.send("dash.add", i, 100) for i in range(3)]

        def all_done() -> bool:
            return all(client.get(f"/api/tasks/{i}").json().get("state") == "SUCCESS" for i in ids)

        wait_until(all_done, "the tasks succeeded on the first dashboard")
    finally:
        stop(first)
    assert first.popen.returncode in (0, -15)  # uvicorn stops cleanly, then dies of the SIGTERM it caught
    assert "dashboard stopped; history kept in" in first.log()
    second, url = start_dashboard(cluster.folder, cluster.env, db, *args, log_name="after")
    try:
        client = Client(url, TOKEN)
        for task_id in ids:
            task = client.get(f"/api/tasks/{task_id}").json()
            assert task["state"] == "SUCCESS"
            assert [e["type"] for e in task["events"]][-1] == "task-succeeded"  # type: ignore[index]
        listed = client.get("/api/tasks?name=dash.add&state=SUCCESS&limit=500").json()
        assert set(ids) <= {t["uuid"] for t in listed["tasks"]}  # type: ignore[union-attr]
        assert client.get("/api/overview").json()["events"] > 0  # the counters too
    finally:
        stop(second)

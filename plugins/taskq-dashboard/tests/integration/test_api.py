"""Every API endpoint against a real dashboard process reading a real worker process (solo pool, -E)
on a SQLite broker."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from dashboard_helpers import TIMEOUT, LiveCluster, wait_until

pytestmark = pytest.mark.integration


def test_overview_counts_the_worker_and_the_tasks(cluster: LiveCluster) -> None:
    cluster.task(cluster.send("dash.add", 1, 1), "SUCCESS")
    overview = wait_until(
        lambda: (found := cluster.client().get("/api/overview").json())["workers_online"] == 1 and found,
        "the worker online",
    )
    assert isinstance(overview, dict)
    assert overview["by_state"]["SUCCESS"] >= 1  # type: ignore[index]
    assert overview["events"] > 0
    assert overview["malformed_events"] == 0


def test_workers_show_events_and_remote_control_answers(cluster: LiveCluster) -> None:
    def answered() -> dict[str, object] | None:
        workers = cluster.client().get("/api/workers").json()["workers"]
        assert isinstance(workers, list)
        return next((w for w in workers if w.get("answered") and w.get("last_heartbeat")), None)

    worker = wait_until(answered, "the worker answering remote control")
    assert isinstance(worker, dict)
    assert worker["online"] is True
    assert worker["pool"] == "solo"
    assert worker["concurrency"] == 1
    assert set(worker["queues"]) == {cluster.queue, cluster.extra_queue}
    assert isinstance(worker["active_tasks"], list) and isinstance(worker["reserved_tasks"], list)


def test_a_running_task_is_in_its_workers_active_tasks(cluster: LiveCluster) -> None:
    task_id = cluster.send("dash.slow", 2)

    def running() -> bool:
        workers = cluster.client().get("/api/workers").json()["workers"]
        return any(t["id"] == task_id for w in workers for t in w["active_tasks"])  # type: ignore[index, union-attr]

    wait_until(running, f"task {task_id} in the worker's active tasks")
    cluster.task(task_id, "SUCCESS")


def test_queues_show_their_depth_and_consumers(cluster: LiveCluster) -> None:
    def listed() -> dict[str, object] | None:
        queues = cluster.client().get("/api/queues").json()["queues"]
        return next((q for q in queues if q["name"] == cluster.queue and q["consumers"]), None)  # type: ignore[union-attr]

    queue = wait_until(listed, "the queue with its consumer")
    assert isinstance(queue, dict)
    assert isinstance(queue["depth"], int)
    assert len(queue["consumers"]) == 1


def test_tasks_are_searched_by_name_state_id_and_arguments(cluster: LiveCluster) -> None:
    marker = uuid.uuid4().int % 10**12
    ok = cluster.send("dash.add", marker, 1)
    failed = cluster.send("dash.fail", f"w{marker}")
    cluster.task(ok, "SUCCESS")
    cluster.task(failed, "FAILURE")
    client = cluster.client()
    found = client.get(f"/api/tasks?search={marker}").json()
    assert {t["uuid"] for t in found["tasks"]} == {ok, failed}  # type: ignore[index, union-attr]
    assert [t["uuid"] for t in client.get(f"/api/tasks?search={marker}&state=FAILURE").json()["tasks"]] == [failed]  # type: ignore[index, union-attr]
    assert [t["uuid"] for t in client.get(f"/api/tasks?search={marker}&name=dash.ad*").json()["tasks"]] == [ok]  # type: ignore[index, union-attr]
    assert [t["uuid"] for t in client.get(f"/api/tasks?id={ok[:13]}").json()["tasks"]] == [ok]  # type: ignore[index, union-attr]
    assert client.get("/api/tasks?state=FAILURE").json()["total"] >= 1  # type: ignore[operator]
    assert "dash.fail" in client.get("/api/task-names").json()["names"]  # type: ignore[operator]


def test_tasks_come_a_page_at_a_time(cluster: LiveCluster) -> None:
    marker = f"page{uuid.uuid4().hex[:10]}"
    ids = [cluster.send("dash.add", marker, str(i)) for i in range(5)]
    cluster.task(ids[-1], "SUCCESS")
    client = cluster.client()
    pages = [client.get(f"/api/tasks?search={marker}&limit=2&offset={offset}").json() for offset in (0, 2, 4)]
    assert [len(page["tasks"]) for page in pages] == [2, 2, 1]  # type: ignore[arg-type]
    assert {page["total"] for page in pages} == {5}
    seen = [t["uuid"] for page in pages for t in page["tasks"]]  # type: ignore[attr-defined]
    assert sorted(seen) == sorted(ids)
    assert client.get("/api/tasks?limit=x").status == 400
    assert client.get("/api/tasks?offset=-1").status == 400


def test_a_task_shows_its_fields_state_history_and_stored_record(cluster: LiveCluster) -> None:
    task_id = cluster.send("dash.add", 20, 22)
    task = cluster.task(task_id, "SUCCESS")
    assert task["name"] == "dash.add"
    assert task["args"] == "(20, 22)"
    assert task["result"] == "42"
    assert isinstance(task["runtime"], float)
    types = [e["type"] for e in task["events"]]  # type: ignore[attr-defined]
    # task-sent first, though the client stamps it after publishing (a quick worker may be done by then)
    assert types == ["task-sent", "task-received", "task-started", "task-succeeded"]
    times = [e["timestamp"] for e in task["events"]][1:]  # type: ignore[attr-defined]
    assert times == sorted(times) and times[0] > 0
    record = task["record"]
    assert isinstance(record, dict)
    assert (record["status"], record["result"]) == ("SUCCESS", "42")


def test_a_failed_task_shows_its_exception_and_traceback(cluster: LiveCluster) -> None:
    task = cluster.task(cluster.send("dash.fail", "now"), "FAILURE")
    assert "boom now" in str(task["exception"])
    assert "ValueError" in str(task["traceback"])


def test_a_chain_shows_its_workflow_tree(cluster: LiveCluster) -> None:
    from taskq.canvas import Signature, chain

    steps = chain(Signature("dash.add", (1, 2), app=cluster.app), Signature("dash.add", (3,), app=cluster.app))
    result = steps.apply_async(queue=cluster.queue)
    cluster.task(result.id, "SUCCESS")
    tree = cluster.client().get(f"/api/tasks/{result.id}/workflow").json()["tree"]
    assert isinstance(tree, dict)
    assert tree["kind"] == "chain"
    assert [step["task"] for step in tree["steps"]] == ["dash.add", "dash.add"]  # type: ignore[index]
    assert tree["steps"][-1]["id"] == result.id  # type: ignore[index]


def test_an_unknown_task_is_404(cluster: LiveCluster) -> None:
    assert cluster.client().get(f"/api/tasks/{uuid.uuid4()}").status == 404


def test_revoking_a_waiting_task_means_it_never_runs(cluster: LiveCluster) -> None:
    mark = cluster.folder / f"ran-{uuid.uuid4().hex}"
    task_id = cluster.send("dash.mark", str(mark), countdown=3)
    cluster.task(task_id, "PENDING")  # sent (a task due later stays in the broker until nearly due)
    reply = cluster.client().post(f"/api/tasks/{task_id}/revoke")
    assert reply.status == 200, reply.body
    assert reply.json()["ok"] is True
    task = cluster.task(task_id, "REVOKED", timeout=TIMEOUT)
    assert "task-revoked" in [e["type"] for e in task["events"]]  # type: ignore[attr-defined]
    # the worker reports it revoked once it is due and skipped: it never ran
    assert not mark.exists()
    assert task["record"]["status"] == "REVOKED"  # type: ignore[index]


def test_terminate_reaches_the_worker(cluster: LiveCluster) -> None:
    reply = cluster.client().post(f"/api/tasks/{uuid.uuid4()}/terminate", {"signal": "SIGTERM"})
    assert reply.status == 200
    assert reply.json()["replies"], "the worker answered"
    assert cluster.client().post(f"/api/tasks/{uuid.uuid4()}/revoke", {"signal": "SIGNOPE"}).status == 400
    assert cluster.client().post(f"/api/tasks/{uuid.uuid4()}/revoke", {"terminate": "yes"}).status == 400


def test_rate_limit_is_set_on_the_workers(cluster: LiveCluster) -> None:
    reply = cluster.client().post("/api/rate-limit", {"task_name": "dash.mark", "rate_limit": "100/s"})
    assert reply.status == 200
    answers = [answer for item in reply.json()["replies"] for answer in item.values()]  # type: ignore[attr-defined]
    assert answers and "ok" in answers[0]
    assert cluster.client().post("/api/rate-limit", {"rate_limit": "1/s"}).status == 400


def test_pool_grow_and_shrink_reach_the_worker_which_says_solo_cannot(cluster: LiveCluster) -> None:
    worker = cluster.client().get("/api/workers").json()["workers"][0]  # type: ignore[index]
    hostname = worker["hostname"]
    for verb in ("grow", "shrink"):
        reply = cluster.client().post(f"/api/workers/{hostname}/pool/{verb}", {"n": 1})
        assert reply.status == 200
        assert "solo pool cannot grow or shrink" in str(reply.json()["replies"])
    assert cluster.client().post(f"/api/workers/{hostname}/pool/grow", {"n": 0}).status == 400


def test_cancelling_a_consumer_stops_the_worker_consuming_that_queue(cluster: LiveCluster) -> None:
    client = cluster.client()
    hostname = client.get("/api/workers").json()["workers"][0]["hostname"]  # type: ignore[index]
    reply = client.post(f"/api/workers/{hostname}/consumers/cancel", {"queue": cluster.extra_queue})
    assert reply.status == 200 and reply.json()["replies"]

    def gone() -> bool:
        worker = client.get("/api/workers").json()["workers"][0]  # type: ignore[index]
        return cluster.extra_queue not in worker["queues"] and cluster.queue in worker["queues"]

    wait_until(gone, "the extra queue gone from the worker's queues")
    reply = client.post(f"/api/workers/{hostname}/consumers/add", {"queue": cluster.extra_queue})
    assert reply.status == 200
    wait_until(lambda: cluster.extra_queue in client.get("/api/workers").json()["workers"][0]["queues"], "back")  # type: ignore[index]


def test_a_body_that_is_not_a_json_object_is_refused(cluster: LiveCluster) -> None:
    client = cluster.client()
    assert client.request("POST", "/api/rate-limit", raw=b"[1, 2]").status == 400
    assert client.request("POST", "/api/rate-limit", raw=b"{not json").status == 400


def test_rates_count_what_the_worker_did(cluster: LiveCluster) -> None:
    cluster.task(cluster.send("dash.add", 2, 2), "SUCCESS")
    rates = cluster.client().get("/api/rates?minutes=5").json()
    assert rates["bucket"] == 10
    assert sum(p["succeeded"] for p in rates["points"]) >= 1  # type: ignore[attr-defined]


def test_the_openapi_document_is_served(cluster: LiveCluster) -> None:
    doc = cluster.client().get("/api/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert "/api/tasks" in doc["paths"]  # type: ignore[operator]


def test_the_live_stream_sends_an_update_when_a_task_changes(cluster: LiveCluster) -> None:
    host, port = cluster.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        token = cluster.client().token
        sock.sendall(f"GET /api/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        received = b""
        deadline = time.monotonic() + TIMEOUT
        while received.count(b"event: update") < 1 and time.monotonic() < deadline:
            received += sock.recv(65536)
        assert b"text/event-stream" in received
        first = received.count(b"event: update")
        cluster.send("dash.add", 5, 5)
        while received.count(b"event: update") <= first and time.monotonic() < deadline:
            received += sock.recv(65536)
    assert received.count(b"event: update") > first
    assert b'"workers_online": 1' in received


def test_static_files_and_pages_are_served(cluster: LiveCluster, tmp_path: Path) -> None:
    client = cluster.client()
    for path in ("/", "/workers", "/queues", "/tasks", f"/tasks/{uuid.uuid4()}"):
        reply = client.get(path)
        assert reply.status == 200 and "taskq dashboard" in str(reply.body), path
    assert "lineChart" in str(client.get("/static/chart.js").body)
    assert "EventSource" in str(client.get("/static/app.js").body)


def test_malformed_events_from_the_broker_are_skipped_and_counted(cluster: LiveCluster) -> None:
    client = cluster.client()
    before = client.get("/api/overview").json()["malformed_events"]
    assert isinstance(before, int)
    hostile: list[dict[str, object]] = [
        {"type": "task-received", "timestamp": time.time()},  # no uuid
        {"type": "task-succeeded", "uuid": ["not", "text"], "timestamp": time.time()},
        {"type": "task-failed", "uuid": str(uuid.uuid4()), "timestamp": "yesterday"},
        {"type": "worker-heartbeat", "timestamp": time.time(), "hostname": {"x": 1}},
        {"type": "task-started", "uuid": "x" * 1000, "timestamp": time.time()},
    ]  # (one without a text type never leaves the transport: its reader drops it)
    transport = cluster.app.new_transport()
    try:
        transport.send_events(hostile)
    finally:
        transport.close()
    wait_until(
        lambda: client.get("/api/overview").json()["malformed_events"] == before + len(hostile),  # type: ignore[operator]
        "the malformed events counted",
    )
    cluster.task(cluster.send("dash.add", 3, 4), "SUCCESS")  # and the dashboard goes on

"""Events on the memory transport: what a worker and a client send, and how they are read."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from taskq import App
from taskq.drivers.transport import Transport
from taskq.errors import Reject
from taskq.events import HEARTBEAT_INTERVAL, EventDispatcher, EventReceiver, utcoffset

TIMEOUT = 10.0


@pytest.fixture
def app(memory_url: str) -> App:
    app = App("events", broker=memory_url, read_config=False)

    @app.task(name="ev.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="ev.boom")
    def boom() -> None:
        raise ValueError("boom")

    @app.task(name="ev.refuse")
    def refuse() -> None:
        raise Reject("no", requeue=False)

    return app


def collect(receiver: EventReceiver, until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """Events read until ``until(events)`` holds; fails after :data:`TIMEOUT` seconds."""
    found: list[dict[str, Any]] = []
    receiver.handlers["*"] = found.append
    deadline = time.monotonic() + TIMEOUT
    while not until(found):
        assert time.monotonic() < deadline, f"gave up waiting; got {[e['type'] for e in found]}"
        receiver.capture(timeout=0.2)
    return found


def types(events: list[dict[str, Any]], uuid: str | None = None) -> list[str]:
    return [e["type"] for e in events if uuid is None or e.get("uuid") == uuid]


def test_a_dispatcher_sends_celerys_fields_in_batches_with_a_lamport_clock(app: App) -> None:
    with EventReceiver(app) as receiver:
        dispatcher = EventDispatcher(app, "w1@host", flush_interval=0.05)
        for n in range(3):
            dispatcher.send("task-started", uuid=f"id-{n}")
        events = collect(receiver, lambda found: len(found) >= 3)
        dispatcher.close()
    assert [e["clock"] for e in events] == [1, 2, 3]
    first = events[0]
    assert {k: first[k] for k in ("type", "uuid", "hostname", "utcoffset")} == {
        "type": "task-started",
        "uuid": "id-0",
        "hostname": "w1@host",
        "utcoffset": utcoffset(),
    }
    assert abs(float(first["timestamp"]) - time.time()) < TIMEOUT
    assert dispatcher.sent == 3 and dispatcher.dropped == 0


def test_a_dispatcher_sends_only_its_groups_and_drops_the_oldest_when_full(app: App) -> None:
    dispatcher = EventDispatcher(app, "w1@host", groups={"worker"}, buffer_max=2, flush_interval=60)
    dispatcher.send("task-received", uuid="x")  # not its group: never buffered
    assert not dispatcher.enabled_for("task") and dispatcher.enabled_for("worker")
    with EventReceiver(app) as receiver:
        for n in range(3):
            dispatcher.send("worker-heartbeat", n=n)
        dispatcher.close()  # sends what is left
        events = collect(receiver, lambda found: len(found) >= 2)
    assert [e["n"] for e in events] == [1, 2]
    assert dispatcher.dropped == 1


def test_a_broker_that_cannot_take_events_costs_a_warning_not_an_error(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: Transport, events: object) -> None:
        raise ConnectionError("broker away")

    monkeypatch.setattr(type(app.transport), "send_events", refuse)
    dispatcher = EventDispatcher(app, "w1@host", flush_interval=0.01)
    for _ in range(3):
        dispatcher.send("worker-heartbeat")
        time.sleep(0.05)
    dispatcher.close()
    assert dispatcher.dropped == 3 and dispatcher.sent == 0
    warnings = [r for r in caplog.records if "could not send" in r.getMessage()]
    assert len(warnings) == 1  # once per outage


def test_a_worker_with_task_events_tells_every_step_of_each_task(app: App, start_worker: Callable[..., Any]) -> None:
    app.conf.update(worker_send_task_events=True)
    with EventReceiver(app) as receiver:
        runner = start_worker(app)
        ok = app.tasks["ev.add"].delay(2, 3)
        failed = app.tasks["ev.boom"].delay()
        refused = app.tasks["ev.refuse"].delay()
        assert ok.get(timeout=TIMEOUT) == 5
        events = collect(receiver, lambda found: "task-rejected" in types(found) and "task-failed" in types(found))
        runner.stop()
        events += collect(receiver, lambda found: "worker-offline" in types(found))
    assert types(events)[0] == "worker-online"
    assert types(events, ok.id) == ["task-received", "task-started", "task-succeeded"]
    succeeded = next(e for e in events if e["type"] == "task-succeeded")
    assert succeeded["result"] == "5" and isinstance(succeeded["runtime"], float)
    received = next(e for e in events if e["type"] == "task-received" and e["uuid"] == ok.id)
    assert (received["name"], received["args"], received["retries"]) == ("ev.add", "(2, 3)", 0)
    failure = next(e for e in events if e["type"] == "task-failed")
    assert failure["uuid"] == failed.id and failure["exception"] == "ValueError('boom')"
    assert "Traceback" in failure["traceback"]
    assert next(e for e in events if e["type"] == "task-rejected")["uuid"] == refused.id
    online = events[0]
    assert online["sw_ident"] == "taskq" and online["freq"] == HEARTBEAT_INTERVAL


def test_a_worker_without_task_events_sends_only_its_own(app: App, start_worker: Callable[..., Any]) -> None:
    with EventReceiver(app) as receiver:
        start_worker(app)
        assert app.tasks["ev.add"].delay(1, 1).get(timeout=TIMEOUT) == 2
        events = collect(receiver, lambda found: "worker-heartbeat" in types(found))
    assert {e["type"].split("-")[0] for e in events} == {"worker"}
    beat = next(e for e in events if e["type"] == "worker-heartbeat")
    assert beat["processed"] >= 1 and beat["active"] == 0 and len(beat["loadavg"]) == 3


def test_a_client_sends_task_sent_when_asked(app: App) -> None:
    with EventReceiver(app) as receiver:
        result = app.tasks["ev.add"].delay(1, 2)  # not asked: nothing
        app.conf.update(task_send_sent_event=True)
        sent = app.tasks["ev.add"].apply_async((3, 4), countdown=60)
        events = collect(receiver, lambda found: len(found) >= 1)
        time.sleep(0.3)
        events += receiver._reader.read(0.1)
    assert [e["uuid"] for e in events] == [sent.id]
    event = events[0]
    assert (event["type"], event["name"], event["args"], event["queue"]) == ("task-sent", "ev.add", "(3, 4)", "taskq")
    assert event["eta"] is not None and event["hostname"].startswith("gen")
    assert result.id != sent.id


def test_taskq_events_prints_each_event_as_json(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskq.cli import state as cli_state
    from taskq.cli.commands import cli

    monkeypatch.setattr(cli_state.CLIState, "app", property(lambda self: app))
    dispatcher = EventDispatcher(app, "w9@host", flush_interval=0.01)

    def later() -> None:
        time.sleep(0.5)
        dispatcher.send("task-succeeded", uuid="abc", result="5")

    import threading

    threading.Thread(target=later, daemon=True).start()
    shown = CliRunner().invoke(cli, ["events", "--json", "--count", "1", "--timeout", "10"])
    dispatcher.close()
    assert shown.exit_code == 0, shown.output
    event = json.loads(shown.output.strip().splitlines()[-1])
    assert (event["type"], event["uuid"], event["hostname"]) == ("task-succeeded", "abc", "w9@host")

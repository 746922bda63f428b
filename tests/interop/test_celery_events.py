"""Events between taskq and Celery 5 on one broker, both ways: Celery's own receiver reads what
taskq sends, and taskq's reader reads what a Celery worker started with ``-E`` sends."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from conftest import REDIS_URL, module

from taskq.drivers.transport import EventReader, Transport

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
# Seconds Celery's receiver takes to stop (it looks at should_stop between 1 s waits).
RECEIVER_STOP_TIMEOUT = 10.0

# One of each event the issue names, with their fields as Celery's worker and client send them.
FIELDS: dict[str, dict[str, object]] = {
    "task-sent": {"name": "interop.add", "args": "(2, 3)", "kwargs": "{}", "queue": "q", "retries": 0},
    "task-received": {"name": "interop.add", "args": "(2, 3)", "kwargs": "{}", "retries": 0, "eta": None},
    "task-started": {},
    "task-succeeded": {"result": "5", "runtime": 0.0125},
    "task-failed": {"exception": "ValueError('no')", "traceback": "Traceback ..."},
    "task-retried": {"exception": "ConnectionError('later')", "traceback": "Traceback ..."},
    "task-revoked": {"terminated": False, "signum": None, "expired": True},
    "task-rejected": {"requeue": False},
    "worker-online": {"freq": 2.0, "sw_ident": "taskq", "sw_ver": "0.1", "sw_sys": "Linux"},
    "worker-heartbeat": {"freq": 2.0, "active": 1, "processed": 7, "loadavg": [0.1, 0.2, 0.3]},
    "worker-offline": {"freq": 2.0},
}


def make_events(hostname: str) -> list[dict[str, object]]:
    made = []
    for clock, (kind, fields) in enumerate(FIELDS.items(), start=1):
        event: dict[str, object] = {
            "type": kind,
            "hostname": hostname,
            "timestamp": time.time(),
            "utcoffset": 0,
            "pid": 4242,
            "clock": clock,
            **fields,
        }
        if kind.startswith("task-"):
            event["uuid"] = str(uuid.uuid4())
        made.append(event)
    return made


class CeleryReceiver:
    """Celery's own ``app.events.Receiver`` with the catch-all handler, capturing in a thread."""

    def __init__(self, app: object) -> None:
        self.received: list[dict[str, object]] = []
        self.ready = threading.Event()
        self._app = app
        self._thread = threading.Thread(target=self._capture, daemon=True)
        self._receiver: object = None

    def _capture(self) -> None:
        with self._app.connection_for_read() as connection:  # type: ignore[attr-defined]
            receiver = self._app.events.Receiver(connection, handlers={"*": self.received.append})  # type: ignore[attr-defined]
            receiver.on_consume_ready = lambda *args, **kwargs: self.ready.set()
            self._receiver = receiver
            receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> CeleryReceiver:
        self._thread.start()
        assert self.ready.wait(TIMEOUT), "Celery's event receiver did not start consuming"
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True  # type: ignore[attr-defined]
        self._thread.join(RECEIVER_STOP_TIMEOUT)

    def wait_for(self, condition: Callable[[list[dict[str, object]]], bool], what: str) -> None:
        end = time.monotonic() + TIMEOUT
        while not condition(list(self.received)):
            assert time.monotonic() < end, f"{what}: not received after {TIMEOUT}s; got {self.received!r}"
            time.sleep(0.05)


def send_until_received(sender: Transport, receiver: CeleryReceiver, hostname: str) -> None:
    """Send probes until Celery's receiver hears one (on Redis it subscribes after it says it is ready)."""
    end = time.monotonic() + TIMEOUT
    while not any(e.get("hostname") == hostname for e in receiver.received):
        assert time.monotonic() < end, f"Celery's receiver heard no probe after {TIMEOUT}s"
        sender.send_events([{"type": "worker-heartbeat", "hostname": hostname, "timestamp": time.time()}])
        time.sleep(0.2)


def check_received_intact(sent: list[dict[str, object]], received: list[dict[str, object]]) -> None:
    by_type = {str(e["type"]): e for e in received if e.get("hostname") == sent[0]["hostname"]}
    for event in sent:
        got = by_type[str(event["type"])]
        # Celery's receiver adds local_received, and sets its own clock on task-sent (clients never sync)
        ignored = {"local_received", "clock"} if event["type"] == "task-sent" else {"local_received"}
        assert {k: v for k, v in got.items() if k not in ignored} == {
            k: v for k, v in event.items() if k not in ignored
        }


def test_celerys_event_receiver_reads_the_events_taskq_sends(interop: dict[str, object]) -> None:
    celery = module(interop, "celery")
    taskq_side = module(interop, "taskq")
    hostname = f"taskq-{uuid.uuid4().hex[:8]}@interop"
    sender = taskq_side.app.new_transport()
    try:
        with CeleryReceiver(celery.app) as receiver:
            send_until_received(sender, receiver, hostname)
            sent = make_events(hostname)
            sender.send_events(sent)
            receiver.wait_for(
                lambda got: {str(e["type"]) for e in got if e.get("hostname") == hostname} >= set(FIELDS),
                "every type of event",
            )
            check_received_intact(sent, receiver.received)
    finally:
        sender.close()


def read_events(reader: EventReader, done: Callable[[list[dict[str, object]]], bool]) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    end = time.monotonic() + TIMEOUT
    while not done(found):
        assert time.monotonic() < end, f"not read after {TIMEOUT}s; got {found!r}"
        found += reader.read(0.5)
    return found


def test_taskq_reads_the_events_of_a_celery_worker_started_with_events(
    interop: dict[str, object], start_worker: Callable[..., object]
) -> None:
    celery = module(interop, "celery")
    taskq_side = module(interop, "taskq")
    transport = taskq_side.app.new_transport()
    reader = transport.event_reader()
    try:
        start_worker("celery", events=True)
        worker_name = f"celery-{interop['queue']}@"
        result = celery.add.delay(2, 3)
        assert result.get(timeout=TIMEOUT) == 5

        def seen(found: list[dict[str, object]]) -> bool:
            mine = [e for e in found if e.get("uuid") == result.id]
            beats = [e for e in found if e["type"] == "worker-heartbeat" and str(e["hostname"]).startswith(worker_name)]
            return {"task-received", "task-started", "task-succeeded"} <= {e["type"] for e in mine} and bool(beats)

        found = read_events(reader, seen)
        mine = {e["type"]: e for e in found if e.get("uuid") == result.id}
        assert mine["task-received"]["name"] == "interop.add"
        assert mine["task-succeeded"]["result"] == "5"
        for event in mine.values():
            assert str(event["hostname"]).startswith(worker_name)
            assert isinstance(event["timestamp"], float)
            assert isinstance(event["clock"], int)
    finally:
        reader.close()
        transport.close()


# ---- A global key prefix on Redis: both kinds of cluster see each other's events ------------------


@pytest.fixture
def keyprefix() -> Iterator[str]:
    yield f"interop-{uuid.uuid4().hex[:8]}:"


def redis_apps(prefix: str) -> tuple[object, Transport]:
    from celery import Celery

    from taskq_redis.transport import RedisTransport

    app = Celery("interop-events", broker=REDIS_URL)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    return app, RedisTransport(REDIS_URL, {"global_keyprefix": prefix})


def test_with_a_global_keyprefix_celerys_receiver_reads_taskqs_events(keyprefix: str) -> None:
    app, sender = redis_apps(keyprefix)
    hostname = f"taskq-{uuid.uuid4().hex[:8]}@prefixed"
    try:
        with CeleryReceiver(app) as receiver:
            send_until_received(sender, receiver, hostname)
            sent = make_events(hostname)
            sender.send_events(sent)
            receiver.wait_for(
                lambda got: {str(e["type"]) for e in got if e.get("hostname") == hostname} >= set(FIELDS),
                "every type of event",
            )
            check_received_intact(sent, receiver.received)
    finally:
        sender.close()
        app.close()  # type: ignore[attr-defined]


def test_with_a_global_keyprefix_taskq_reads_celerys_dispatcher_and_another_prefix_reads_nothing(
    keyprefix: str,
) -> None:
    app, transport = redis_apps(keyprefix)
    _, elsewhere = redis_apps(keyprefix + "other:")
    reader = transport.event_reader()
    other_reader = elsewhere.event_reader()
    try:
        task_id = str(uuid.uuid4())
        with app.connection_for_write() as connection:  # type: ignore[attr-defined]
            dispatcher = app.events.Dispatcher(connection, hostname="celery@prefixed")  # type: ignore[attr-defined]
            dispatcher.send("task-succeeded", uuid=task_id, result="5", runtime=0.5)
            dispatcher.send("worker-heartbeat", freq=2.0, active=0, processed=1)
            dispatcher.close()
        found = read_events(reader, lambda got: len(got) >= 2)
        assert [e["type"] for e in found] == ["task-succeeded", "worker-heartbeat"]
        assert found[0]["uuid"] == task_id and found[0]["result"] == "5"
        assert all(e["hostname"] == "celery@prefixed" for e in found)
        assert other_reader.read(0.5) == []
    finally:
        reader.close()
        other_reader.close()
        transport.close()
        elsewhere.close()
        app.close()  # type: ignore[attr-defined]


def test_celerys_state_follows_a_taskq_worker_started_with_events(interop: dict[str, object], start_worker) -> None:
    """What Flower and ``celery events`` keep: Celery's own State, fed by Celery's receiver,
    sees a taskq worker alive and its tasks go from received to succeeded or failed."""
    celery = module(interop, "celery")
    state = celery.app.events.State()  # type: ignore[attr-defined]
    with CeleryReceiver(celery.app) as receiver:
        start_worker("taskq", events=True)
        ok = celery.add.delay(2, 3)
        failed = celery.fail.delay("boom")
        assert ok.get(timeout=TIMEOUT) == 5
        with pytest.raises(Exception, match="boom"):
            failed.get(timeout=TIMEOUT)
        receiver.wait_for(
            lambda got: (
                {e.get("uuid") for e in got if e.get("type") in ("task-succeeded", "task-failed")} >= {ok.id, failed.id}
                and any(e.get("type") == "worker-heartbeat" for e in got)
            ),
            "the tasks' last events and a heartbeat",
        )
        for event in list(receiver.received):
            state.event(event)
    task = state.tasks[ok.id]
    assert (task.state, task.name, task.result) == ("SUCCESS", "interop.add", "5")
    assert task.received and task.started and task.succeeded and task.runtime is not None
    assert state.tasks[failed.id].state == "FAILURE" and "boom" in state.tasks[failed.id].exception
    [worker] = [w for w in state.workers.values() if w.hostname.startswith("taskq@")]
    assert worker.alive and worker.sw_ident == "taskq"

"""Celery's eventlet_pool_* signals, from the taskq_eventlet_pool_* hooks this plugin's pool calls."""

from __future__ import annotations

import json
import os
import sys
import types
import uuid
from pathlib import Path
from signal import SIGTERM

from taskq.hookspecs import hookimpl
from taskq.plugins import load_plugins
from taskq.testing import WorkerProcess
from taskq.testing.conformance.pool import Outcome
from taskq_eventlet.pool import EventletPool

# Seconds a job may take in these tests.
DEADLINE = 10.0

#: A worker's app whose receivers write what they hear to $HEARD_FILE, one JSON object a
#: line; once the worker is ready it sends itself a task (the broker is memory://, in it).
APP = """
import json
import os

from taskq import App, signals

app = App("eventlet-signals")


def note(name, **values):
    with open(os.environ["HEARD_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps({"signal": name, **values}) + "\\n")


@app.task(name="ev.add")
def add(x, y):
    note("task ran", result=x + y)
    return x + y


@signals.worker_ready.connect
def send_a_task(sender=None, **kwargs):
    add.delay(2, 3)


@signals.eventlet_pool_started.connect
def started(sender=None, **kwargs):
    note("eventlet_pool_started", sender=type(sender).__name__, patched=sender.patched)


@signals.eventlet_pool_apply.connect
def apply(sender=None, target=None, args=None, kwargs=None, **_):
    note("eventlet_pool_apply", sender=type(sender).__name__, target=target.__name__, task=args[1].name, kwargs=kwargs)


@signals.eventlet_pool_preshutdown.connect
def preshutdown(sender=None, **kwargs):
    note("eventlet_pool_preshutdown", sender=type(sender).__name__)


@signals.eventlet_pool_postshutdown.connect
def postshutdown(sender=None, **kwargs):
    note("eventlet_pool_postshutdown", sender=type(sender).__name__)
"""


def test_an_eventlet_worker_process_sends_the_eventlet_signals_in_order(tmp_path: Path) -> None:
    (tmp_path / "eventlet_signals_app.py").write_text(APP, encoding="utf-8")
    heard_file = tmp_path / "heard.jsonl"
    env = {
        "HEARD_FILE": str(heard_file),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        "TASKQ_BROKER_URL": f"memory://{uuid.uuid4().hex}",
    }
    command = [sys.executable, "-m", "taskq", "-A", "eventlet_signals_app", "worker", "-P", "eventlet", "-l", "info"]
    worker = WorkerProcess(command, tmp_path / "worker.log", env=env, cwd=tmp_path)
    try:
        worker.wait_for(" succeeded in ")  # the task it sent itself
        worker.signal(SIGTERM)
        assert worker.wait() == 0, worker.log()
    finally:
        worker.kill()
    heard = [json.loads(line) for line in heard_file.read_text(encoding="utf-8").splitlines()]
    assert heard == [
        {"signal": "eventlet_pool_started", "sender": "EventletPool", "patched": True},
        {
            "signal": "eventlet_pool_apply",
            "sender": "EventletPool",
            "target": "trace_task",
            "task": "ev.add",
            "kwargs": {},
        },
        {"signal": "task ran", "result": 5},
        {"signal": "eventlet_pool_preshutdown", "sender": "EventletPool"},
        {"signal": "eventlet_pool_postshutdown", "sender": "EventletPool"},
    ]


def recording_pool(events: list[tuple[object, ...]]) -> EventletPool:
    """An eventlet pool given a plugin manager whose plugin records the pool's hooks, as a worker gives it one."""
    plugin = types.SimpleNamespace(
        taskq_eventlet_pool_started=hookimpl(lambda pool: events.append(("started", pool))),
        taskq_eventlet_pool_stopping=hookimpl(lambda pool: events.append(("stopping", pool))),
        taskq_eventlet_pool_stopped=hookimpl(lambda pool: events.append(("stopped", pool))),
        taskq_eventlet_pool_apply=hookimpl(lambda pool, target, args: events.append(("apply", pool, target, args))),
    )
    pool = EventletPool(2)
    pool.plugins = load_plugins(extra=[plugin])
    return pool


def add(x: int, y: int) -> int:
    return x + y


def test_the_pool_calls_its_hooks_as_it_starts_is_handed_a_job_and_stops_once() -> None:
    events: list[tuple[object, ...]] = []
    pool = recording_pool(events)
    pool.start()
    outcome = Outcome()
    pool.apply(add, (2, 3), callback=outcome.callback, error_callback=outcome.error_callback)
    assert outcome.wait(DEADLINE).value == 5
    pool.stop(wait=False)  # a cold stop: the consumer stops the pool, then the pool's step does again
    pool.stop(wait=True)
    assert events == [("started", pool), ("apply", pool, add, (2, 3)), ("stopping", pool), ("stopped", pool)]

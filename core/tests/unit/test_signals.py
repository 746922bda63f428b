"""Signals in application code, with Celery's names and arguments, built on the plugin hooks."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from signal import SIGTERM
from typing import TYPE_CHECKING, cast

import pytest

from taskq import App, signals
from taskq.drivers.transport import Message
from taskq.testing import WorkerProcess

if TYPE_CHECKING:
    from taskq.result import AsyncResult

TIMEOUT = 10.0
Heard = list[tuple[str, dict[str, object]]]

#: The start of an app module whose receivers write what they hear to the file $HEARD_FILE,
#: one JSON object a line, for a worker started as a process of its own.
RECORDING_APP = """
import json
import os

from taskq import App, signals

app = App("sigproc")


def note(name, **values):
    with open(os.environ["HEARD_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps({"signal": name, **values}) + "\\n")
"""


@pytest.fixture
def heard() -> Iterator[Heard]:
    """Receivers connected in a test are all disconnected after it (signals are global)."""
    found: Heard = []
    everything = [value for value in vars(signals).values() if isinstance(value, signals.Signal)]
    yield found
    for signal in everything:  # the test's own receivers, and the hook implementations they opened
        signal._receivers.clear()
        signals._bridges.close(signal)


def listen(heard: Heard, *names: str) -> None:
    for name in names:
        signal = getattr(signals, name)

        def receiver(sender: object = None, _name: str = name, **kwargs: object) -> None:
            heard.append((_name, {"sender": sender, **kwargs}))

        signal.connect(receiver, dispatch_uid=f"test-{name}")


def test_task_signals_are_sent_with_celery_s_arguments(
    app: App, start_worker: Callable[..., object], wait_until: Callable[..., None], heard: Heard
) -> None:
    @app.task(name="sig.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="sig.fail")
    def fail() -> None:
        raise ValueError("no")

    listen(heard, "before_task_publish", "after_task_publish", "task_received", "task_prerun")
    listen(heard, "task_success", "task_failure", "task_postrun")
    start_worker(app)
    result = add.delay(2, 3)
    assert result.get(timeout=TIMEOUT) == 5
    wait_until(lambda: [name for name, _ in heard][-1:] == ["task_postrun"], "the postrun signal")
    by_name = dict(heard)
    assert by_name["before_task_publish"]["sender"] == "sig.add"
    assert by_name["before_task_publish"]["headers"]["id"] == result.id  # type: ignore[index]
    assert by_name["after_task_publish"]["routing_key"] == "taskq"
    assert by_name["task_received"]["request"].id == result.id  # type: ignore[attr-defined]
    assert by_name["task_prerun"]["sender"] is add
    assert (by_name["task_prerun"]["task_id"], by_name["task_prerun"]["args"]) == (result.id, [2, 3])
    assert by_name["task_success"]["result"] == 5
    assert (by_name["task_postrun"]["state"], by_name["task_postrun"]["retval"]) == ("SUCCESS", 5)
    heard.clear()
    failed = fail.delay()
    with pytest.raises(ValueError, match="no"):
        failed.get(timeout=TIMEOUT)
    wait_until(lambda: "task_failure" in dict(heard), "the failure signal")
    failure = dict(heard)["task_failure"]
    assert failure["task_id"] == failed.id
    assert repr(failure["exception"]) == "ValueError('no')"
    assert "ValueError: no" in failure["einfo"].traceback  # type: ignore[attr-defined]


def test_task_internal_error_is_sent_where_the_task_ran_when_the_worker_s_part_fails(
    app: App,
    start_worker: Callable[..., object],
    wait_until: Callable[..., None],
    heard: Heard,
    make_plugin: Callable[..., types.ModuleType],
) -> None:
    def refuse(message: Message) -> None:
        if message.headers.get("task") == "sig.refused":
            raise RuntimeError("refused")

    app.plugins.register(make_plugin("refuser", taskq_message_encoded=refuse))

    @app.task(name="sig.first")
    def first(x: int) -> int:
        return x

    @app.task(name="sig.refused")
    def refused(x: int) -> int:
        return x

    listen(heard, "task_internal_error", "task_failure")
    start_worker(app)
    last = (first.s(7) | refused.s()).delay()  # sending the chain's second step fails in the worker
    first_id = cast("AsyncResult[object]", last.parent).id
    wait_until(lambda: [name for name, _ in heard] == ["task_internal_error", "task_failure"], "both signals")
    error = dict(heard)["task_internal_error"]
    assert error["sender"] is first
    assert (error["task_id"], error["args"], error["kwargs"]) == (first_id, [7], {})
    assert error["request"].id == first_id  # type: ignore[attr-defined]
    assert repr(error["exception"]) == "RuntimeError('refused')"
    assert isinstance(error["traceback"], types.TracebackType)
    assert "RuntimeError: refused" in error["einfo"].traceback  # type: ignore[attr-defined]


def test_a_receiver_for_one_sender_hears_only_that_task(
    app: App, start_worker: Callable[..., object], wait_until: Callable[..., None], heard: Heard
) -> None:
    @app.task(name="sig.one")
    def one() -> int:
        return 1

    @app.task(name="sig.two")
    def two() -> int:
        return 2

    @signals.task_success.connect(sender=one)
    def by_task(sender: object = None, result: object = None, **_: object) -> None:
        heard.append(("by task", {"result": result}))

    @signals.task_success.connect(sender="sig.two")
    def by_name(sender: object = None, result: object = None, **_: object) -> None:
        heard.append(("by name", {"result": result}))

    start_worker(app)
    assert [one.delay().get(timeout=TIMEOUT), two.delay().get(timeout=TIMEOUT)] == [1, 2]
    wait_until(lambda: len(heard) == 2, "both receivers")
    assert sorted((name, found["result"]) for name, found in heard) == [("by name", 2), ("by task", 1)]


def test_a_receiver_that_raises_is_logged_and_the_task_and_others_go_on(
    app: App,
    start_worker: Callable[..., object],
    wait_until: Callable[..., None],
    heard: Heard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    @app.task(name="sig.ok")
    def ok() -> str:
        return "ok"

    @signals.task_prerun.connect
    def broken(**_: object) -> None:
        raise RuntimeError("receiver bug")

    listen(heard, "task_prerun")
    start_worker(app)
    assert ok.delay().get(timeout=TIMEOUT) == "ok"
    wait_until(lambda: heard, "the other receiver")
    assert "a receiver of signal task_prerun raised" in caplog.text


def test_unknown_tasks_and_the_worker_s_life_are_signalled(
    app: App, start_worker: Callable[..., object], wait_until: Callable[..., None], heard: Heard
) -> None:
    listen(heard, "worker_init", "worker_ready", "task_unknown")
    runner = start_worker(app)
    wait_until(lambda: {"worker_init", "worker_ready"} <= set(dict(heard)), "the worker's signals")
    app.send_task("sig.nobody", [])
    wait_until(lambda: "task_unknown" in dict(heard), "the unknown task")
    assert dict(heard)["task_unknown"]["name"] == "sig.nobody"
    listen(heard, "worker_shutdown")
    runner.stop()  # type: ignore[attr-defined]
    wait_until(lambda: "worker_shutdown" in dict(heard), "the shutdown signal")


def test_import_modules_is_sent_by_a_starting_worker_before_it_imports_the_task_modules(
    start_worker: Callable[..., object], heard: Heard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"sig_tasks_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = App("sig", broker=f"memory://{uuid.uuid4().hex}", read_config=False, imports=[module])

    @signals.import_modules.connect
    def note(sender: object = None, **_: object) -> None:
        heard.append(("import_modules", {"sender": sender, "imported": module in sys.modules}))

    start_worker(app)
    sys.modules.pop(module, None)
    assert heard == [("import_modules", {"sender": app, "imported": False})]


def test_a_signal_without_receivers_registers_nothing_and_reaches_apps_made_before_or_after(heard: Heard) -> None:
    before = App("before", broker=f"memory://{uuid.uuid4().hex}", read_config=False)
    assert not before.plugins.has_impl("taskq_task_prerun")

    def receiver(**_: object) -> None: ...

    signals.task_prerun.connect(receiver)
    after = App("after", broker=f"memory://{uuid.uuid4().hex}", read_config=False)
    assert before.plugins.has_impl("taskq_task_prerun") and after.plugins.has_impl("taskq_task_prerun")
    assert signals.task_prerun.disconnect(receiver)
    assert not before.plugins.has_impl("taskq_task_prerun") and not after.plugins.has_impl("taskq_task_prerun")


def test_an_application_s_own_signal_is_sent_by_hand(heard: Heard) -> None:
    cleaned = signals.Signal("cache_cleaned")

    @cleaned.connect
    def on_clean(sender: object = None, count: int = 0, **_: object) -> int:
        return count * 2

    assert cleaned.send(sender="cron", count=21) == [(on_clean, 42)]


# ---- In a worker process of its own -------------------------------------------------


def heard_by_a_worker_process(tmp_path: Path, receivers: str, *arguments: str) -> tuple[list[dict[str, object]], str]:
    """Run ``taskq -A sigproc_app worker -P solo arguments...`` on an app made of
    :data:`RECORDING_APP` and ``receivers`` until it is ready, stop it (SIGTERM), and
    return what its receivers heard, in order, and its log."""
    (tmp_path / "sigproc_app.py").write_text(RECORDING_APP + textwrap.dedent(receivers), encoding="utf-8")
    heard_file = tmp_path / "heard.jsonl"
    env = {
        "HEARD_FILE": str(heard_file),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        "TASKQ_BROKER_URL": f"memory://{uuid.uuid4().hex}",
    }
    command = [sys.executable, "-m", "taskq", "-A", "sigproc_app", "worker", "-P", "solo", "-l", "info", *arguments]
    worker = WorkerProcess(command, tmp_path / "worker.log", env=env, cwd=tmp_path)
    try:
        worker.wait_ready()
        worker.signal(SIGTERM)
        assert worker.wait() == 0, worker.log()
    finally:
        worker.kill()
    lines = heard_file.read_text(encoding="utf-8").splitlines() if heard_file.exists() else []
    return [json.loads(line) for line in lines], worker.log()


def test_a_worker_process_sends_its_start_up_signals_in_celery_s_order_with_celery_s_arguments(tmp_path: Path) -> None:
    receivers = """
    @signals.user_preload_options.connect
    def user_preload_options(sender=None, app=None, options=None, **kwargs):
        note("user_preload_options", sender=sender is app, app=app.main, options=options)


    @signals.after_setup_task_logger.connect
    def after_setup_task_logger(sender=None, logger=None, loglevel=None, logfile=None, format=None, **kwargs):
        note(
            "after_setup_task_logger",
            sender=sender,
            logger=logger.name,
            loglevel=loglevel,
            logfile=logfile,
            format=format == app.conf.worker_log_format,
            colorize=kwargs["colorize"],
        )


    @signals.celeryd_init.connect
    def celeryd_init(sender=None, instance=None, conf=None, options=None, **kwargs):
        note(
            "celeryd_init",
            sender=sender,
            instance=type(instance).__name__,
            set_up=hasattr(instance, "pool"),
            conf=conf is app.conf,
            options={name: options[name] for name in ("pool", "queues", "hostname")},
        )
        conf.update(worker_prefetch_multiplier=3)  # the worker reads it next


    @signals.worker_init.connect
    def worker_init(sender=None, **kwargs):
        note("worker_init", prefetch=sender.prefetch_count)


    @signals.import_modules.connect
    def import_modules(sender=None, **kwargs):
        note("import_modules", sender=sender is app)


    @signals.celeryd_after_setup.connect
    def celeryd_after_setup(sender=None, instance=None, conf=None, **kwargs):
        note("celeryd_after_setup", sender=sender, instance=instance.hostname, conf=conf is app.conf)
        instance.queues.append("added")


    @signals.worker_ready.connect
    def worker_ready(sender=None, **kwargs):
        note("worker_ready", queues=sender.consumer.queues)
    """
    heard, log = heard_by_a_worker_process(tmp_path, receivers, "-n", "sig@test", "-Q", "first")
    assert heard == [
        {
            "signal": "user_preload_options",
            "sender": True,
            "app": "sigproc",
            "options": {"app": "sigproc_app", "config": None},
        },
        {
            "signal": "after_setup_task_logger",
            "sender": None,
            "logger": "taskq.worker.endings",
            "loglevel": "INFO",
            "logfile": None,
            "format": True,
            "colorize": False,
        },
        {
            "signal": "celeryd_init",
            "sender": "sig@test",
            "instance": "Worker",
            "set_up": False,
            "conf": True,
            "options": {"pool": "solo", "queues": ["first"], "hostname": "sig@test"},
        },
        {"signal": "worker_init", "prefetch": 3},
        {"signal": "import_modules", "sender": True},
        {"signal": "celeryd_after_setup", "sender": "sig@test", "instance": "sig@test", "conf": True},
        {"signal": "worker_ready", "queues": ["first", "added"]},
    ]
    assert "queues=first,added" in log


def test_a_worker_process_with_beat_sends_beat_init_then_beat_embedded_init(tmp_path: Path) -> None:
    receivers = """
    import threading


    @signals.beat_init.connect
    def beat_init(sender=None, **kwargs):
        note("beat_init", sender=type(sender).__name__, app=sender.app is app)


    @signals.beat_embedded_init.connect
    def beat_embedded_init(sender=None, **kwargs):
        note("beat_embedded_init", sender=type(sender).__name__, thread=threading.current_thread().name)
    """
    heard, _ = heard_by_a_worker_process(tmp_path, receivers, "-B", "--scheduler", "memory")
    assert heard == [
        {"signal": "beat_init", "sender": "Beat", "app": True},
        {"signal": "beat_embedded_init", "sender": "Beat", "thread": "taskq-beat"},
    ]

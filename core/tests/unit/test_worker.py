"""The worker on ``memory://`` with the solo pool, run in a thread: outcomes and delivery."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from taskq import App, Ignore, Reject, Task, TaskError, TaskqError, states
from taskq._protocol import build_headers, encode, to_iso
from taskq.builtins.memory_drivers import MemoryTransport
from taskq.drivers.transport import Delivery, Message
from taskq.errors import ConfigError, NotRegisteredError, TaskRevokedError

StartWorker = Callable[..., Any]
WaitUntil = Callable[..., None]
# Longest wait for a result, in seconds; a pass never comes near it.
TIMEOUT = 10.0


class FlakyError(Exception):
    """Raised by the tasks below until they have been retried enough."""


def broker(app: App) -> MemoryTransport:
    """A transport of the test's own on the app's broker, as another process would have."""
    return MemoryTransport(str(app.conf["broker_url"]))


def publish_raw(app: App, name: str, args: Sequence[object] = (), *, eta: float | None = None) -> str:
    """Publish a protocol 2 message by hand: its ``eta`` header set, yet due at once."""
    task_id = str(uuid.uuid4())
    headers = build_headers(name, task_id, args=args, kwargs={}, eta=to_iso(eta))
    broker(app).publish("taskq", encode(app.serializers, "json", headers, args, {}))
    return task_id


# ---- Outcomes ---------------------------------------------------------------------------


def test_successful_task_result_is_stored(app: App, start_worker: StartWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    start_worker(app)
    result = add.delay(2, 3)
    assert result.get(timeout=TIMEOUT) == 5
    assert result.state == states.SUCCESS
    assert broker(app).depth("taskq") == 0


def test_failed_task_is_re_raised_by_get_with_its_own_type(app: App, start_worker: StartWorker) -> None:
    @app.task
    def fails() -> None:
        raise ValueError("bad input")

    start_worker(app)
    result = fails.delay()
    with pytest.raises(ValueError, match="bad input"):
        result.get(timeout=TIMEOUT)
    assert result.failed()
    assert result.traceback is not None and "ValueError: bad input" in result.traceback


def test_exception_of_a_type_not_importable_here_comes_back_as_task_error(app: App, start_worker: StartWorker) -> None:
    unimportable = type("UnimportableError", (Exception,), {"__module__": "no_such_module_xyz"})

    @app.task
    def fails() -> None:
        raise unimportable("lost type")

    start_worker(app)
    with pytest.raises(TaskError, match=r"no_such_module_xyz\.UnimportableError: lost type") as info:
        fails.delay().get(timeout=TIMEOUT)
    assert (info.value.exc_type, info.value.exc_module) == ("UnimportableError", "no_such_module_xyz")


def test_task_that_retries_then_succeeds_stores_the_success(app: App, start_worker: StartWorker) -> None:
    seen: list[int] = []

    @app.task(bind=True, max_retries=5)
    def flaky(self: Task[[], int]) -> int:
        seen.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(countdown=0)
        return self.request.retries

    start_worker(app)
    result = flaky.delay()
    assert result.get(timeout=TIMEOUT) == 2
    assert seen == [0, 1, 2]


def test_autoretry_with_backoff_retries_until_the_task_succeeds(app: App, start_worker: StartWorker) -> None:
    seen: list[int] = []

    @app.task(bind=True, autoretry_for=(FlakyError,), retry_backoff=0.01, max_retries=5)
    def flaky(self: Task[[], str]) -> str:
        seen.append(self.request.retries)
        if len(seen) < 3:
            raise FlakyError("not yet")
        return "ok"

    start_worker(app)
    assert flaky.delay().get(timeout=TIMEOUT) == "ok"
    assert seen == [0, 1, 2]


def test_autoretry_past_max_retries_fails_with_the_original_exception(app: App, start_worker: StartWorker) -> None:
    runs: list[int] = []

    @app.task(autoretry_for=(FlakyError,), retry_backoff=0.01, max_retries=1)
    def broken() -> None:
        runs.append(1)
        raise FlakyError(f"attempt {len(runs)}")

    start_worker(app)
    with pytest.raises(FlakyError, match="attempt 2"):
        broken.delay().get(timeout=TIMEOUT)


def test_ignore_stores_no_state(app: App, start_worker: StartWorker, wait_until: WaitUntil) -> None:
    @app.task
    def ignored() -> None:
        raise Ignore

    runner = start_worker(app)
    result = ignored.delay()
    wait_until(lambda: runner.consumer.processed == 1, "the task to run")
    assert result.state == states.PENDING
    assert broker(app).depth("taskq") == 0


def test_ignore_result_stores_nothing(app: App, start_worker: StartWorker, wait_until: WaitUntil) -> None:
    @app.task(ignore_result=True)
    def quiet() -> int:
        return 1

    runner = start_worker(app)
    result = quiet.delay()
    wait_until(lambda: runner.consumer.processed == 1, "the task to run")
    assert result.state == states.PENDING
    assert app.backend.get_task_meta(result.id)["status"] == states.PENDING


def test_result_extended_stores_the_request(memory_url: str, start_worker: StartWorker) -> None:
    app = App("tests", broker=memory_url, read_config=False, result_extended=True)

    @app.task
    def add(x: int, y: int = 0) -> int:
        return x + y

    runner = start_worker(app, hostname="w1@test")
    result = add.apply_async((2,), {"y": 3})
    assert result.get(timeout=TIMEOUT) == 5
    meta = app.backend.get_task_meta(result.id)
    assert meta["name"] == add.name
    assert meta["args"] == [2]
    assert meta["kwargs"] == {"y": 3}
    assert meta["worker"] == runner.worker.hostname == "w1@test"
    assert meta["queue"] == "taskq"


def test_link_callback_runs_with_the_result(app: App, start_worker: StartWorker, wait_until: WaitUntil) -> None:
    seen: list[object] = []

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def record(value: object) -> None:
        seen.append(value)

    start_worker(app)
    add.apply_async((2, 3), link=record.s())
    wait_until(lambda: seen == [5], "the callback")


def test_link_error_errback_gets_the_failed_task_id(app: App, start_worker: StartWorker, wait_until: WaitUntil) -> None:
    seen: list[object] = []

    @app.task
    def fails() -> None:
        raise ValueError("x")

    @app.task
    def on_error(task_id: str) -> None:
        seen.append(task_id)

    start_worker(app)
    result = fails.apply_async(link_error=on_error.s())
    wait_until(lambda: seen == [result.id], "the errback")


# ---- Timing: countdown, ETA, expiry ---------------------------------------------------------


def test_countdown_delays_a_task_behind_one_sent_after_it(app: App, start_worker: StartWorker) -> None:
    order: list[str] = []

    @app.task
    def job(label: str) -> None:
        order.append(label)

    late = job.apply_async(("late",), countdown=0.3)
    early = job.delay("early")
    start_worker(app)
    late.get(timeout=TIMEOUT)
    early.get(timeout=TIMEOUT)
    assert order == ["early", "late"]


def test_near_eta_waits_in_the_worker_timer_behind_a_later_task(app: App, start_worker: StartWorker) -> None:
    order: list[str] = []

    @app.task
    def job(label: str) -> None:
        order.append(label)

    late_id = publish_raw(app, job.name, ["late"], eta=time.time() + 0.3)
    early = job.delay("early")
    start_worker(app)
    app.AsyncResult(late_id).get(timeout=TIMEOUT)
    early.get(timeout=TIMEOUT)
    assert order == ["early", "late"]


def test_near_etas_that_fill_the_prefetch_window_do_not_hold_back_tasks_due_now(
    app: App, start_worker: StartWorker
) -> None:
    """Tasks waiting in the timer for their ETA stay out of the prefetch window, as in Celery:
    a solo worker (window 4) holding 8 ETAs 30 s away still runs the task sent after them."""
    ran: list[str] = []

    @app.task
    def job(label: str) -> None:
        ran.append(label)

    eta = time.time() + 30
    for number in range(8):  # as a Celery client sends them: the ETA in the headers only
        publish_raw(app, job.name, [f"later-{number}"], eta=eta)
    now = job.delay("now")
    runner = start_worker(app, prefetch_multiplier=4)
    now.get(timeout=TIMEOUT)
    assert ran == ["now"]
    assert len(runner.consumer.timer) == 8


def test_far_eta_goes_back_to_the_broker_with_a_delay(memory_url: str, start_worker: StartWorker) -> None:
    app = App("tests", broker=memory_url, read_config=False, worker_eta_horizon=1.0)
    ran: list[str] = []

    @app.task
    def job(label: str) -> None:
        ran.append(label)

    publish_raw(app, job.name, ["far"], eta=time.time() + 3600)
    after = job.delay("now")  # claimed after the far one: handled once this one has run
    runner = start_worker(app)
    after.get(timeout=TIMEOUT)
    assert ran == ["now"]
    assert runner.consumer.timer == []
    assert runner.consumer.held_deliveries() == []
    assert broker(app).depth("taskq") == 1
    assert broker(app).claim(["taskq"], 10) == []


def test_expired_task_is_revoked_and_get_raises_task_revoked(app: App, start_worker: StartWorker) -> None:
    ran: list[int] = []

    @app.task
    def job() -> None:
        ran.append(1)

    result = job.apply_async(expires=-1)
    start_worker(app)
    with pytest.raises(TaskRevokedError, match="expired"):
        result.get(timeout=TIMEOUT)
    assert result.state == states.REVOKED
    assert ran == []
    assert broker(app).depth("taskq") == 0


# ---- Dead letters ---------------------------------------------------------------------------


def test_unknown_task_is_dead_lettered_and_get_raises_not_registered(app: App, start_worker: StartWorker) -> None:
    result = app.send_task("proj.nobody_has_this")
    start_worker(app)
    with pytest.raises(NotRegisteredError, match=r"proj\.nobody_has_this"):
        result.get(timeout=TIMEOUT)
    [dead] = broker(app).dead_letters("taskq")
    assert "unknown task 'proj.nobody_has_this'" in dead.reason
    assert broker(app).depth("taskq") == 0


def test_message_that_cannot_be_decoded_is_dead_lettered_and_the_worker_carries_on(
    app: App, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    broker(app).publish("taskq", Message(b"\xff\x00 garbage", {"task": add.name, "id": "garbage-1"}))
    start_worker(app)
    wait_until(lambda: broker(app).dead_letters("taskq"), "the dead letter")
    [dead] = broker(app).dead_letters("taskq")
    assert "cannot decode the message" in dead.reason
    assert dead.message.body == b"\xff\x00 garbage"
    assert add.delay(1, 1).get(timeout=TIMEOUT) == 2


def test_content_type_not_accepted_is_dead_lettered(app: App, start_worker: StartWorker, wait_until: WaitUntil) -> None:
    ran: list[int] = []

    @app.task
    def job() -> None:
        ran.append(1)

    job.apply_async(serializer="pickle")
    start_worker(app)
    wait_until(lambda: broker(app).dead_letters("taskq"), "the dead letter")
    [dead] = broker(app).dead_letters("taskq")
    assert "accept_content" in dead.reason
    assert ran == []


def test_sender_of_a_message_refused_by_the_worker_learns_why(app: App, start_worker: StartWorker) -> None:
    @app.task
    def job() -> None:
        pass

    result = job.apply_async(serializer="pickle")
    start_worker(app)
    with pytest.raises(TaskqError, match="not in accept_content"):
        result.get(timeout=TIMEOUT)


def test_poison_message_delivered_too_often_is_dead_lettered(memory_url: str, start_worker: StartWorker) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_max_deliveries=2)
    ran: list[int] = []

    @app.task
    def deadly() -> None:
        ran.append(1)

    result = deadly.delay()
    crashed = broker(app)  # stands for workers that died running the task
    for _ in range(2):
        [delivery] = crashed.claim(["taskq"], 1)
        crashed.started([delivery])
        crashed.requeue([delivery])
    start_worker(app)
    with pytest.raises(TaskqError, match="handed out 3 times"):
        result.get(timeout=TIMEOUT)
    [dead] = broker(app).dead_letters("taskq")
    assert "task_max_deliveries=2" in dead.reason
    assert ran == []


def test_a_message_handed_out_often_but_never_started_is_not_poison(memory_url: str, start_worker: StartWorker) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_max_deliveries=2)

    @app.task(acks_late=True)
    def innocent() -> str:
        return "ran"

    result = innocent.delay()
    prefetched = broker(app)  # stands for workers that died with the message prefetched, not started
    for _ in range(5):
        [delivery] = prefetched.claim(["taskq"], 1)
        assert delivery.deliveries == 1
        prefetched.requeue([delivery])
    start_worker(app)
    assert result.get(timeout=TIMEOUT) == "ran"
    assert broker(app).dead_letters("taskq") == []


def test_reject_without_requeue_dead_letters_the_message(
    app: App, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    @app.task(acks_late=True)
    def picky() -> None:
        raise Reject("bad data", requeue=False)

    start_worker(app)
    picky.delay()
    wait_until(lambda: broker(app).dead_letters("taskq"), "the dead letter")
    [dead] = broker(app).dead_letters("taskq")
    assert dead.reason == "rejected by the task: bad data"
    assert broker(app).depth("taskq") == 0


# ---- Stopping and leases ----------------------------------------------------------------------


def test_acks_late_task_interrupted_by_a_cold_stop_goes_back_to_the_broker(app: App, start_worker: StartWorker) -> None:
    @app.task(acks_late=True)
    def interrupted() -> None:
        # What the CLI's second signal does to a task running inline: end it mid-run.
        raise SystemExit("cold shutdown")

    runner = start_worker(app)
    result = interrupted.delay()
    runner.join()
    assert isinstance(runner.error, SystemExit)
    assert result.state == states.PENDING
    assert broker(app).depth("taskq") == 1
    [delivery] = broker(app).claim(["taskq"], 10)
    assert delivery.deliveries == 2


def test_early_acked_task_interrupted_by_a_cold_stop_is_not_redelivered(app: App, start_worker: StartWorker) -> None:
    @app.task
    def interrupted() -> None:
        raise SystemExit("cold shutdown")

    runner = start_worker(app)
    interrupted.delay()
    runner.join()
    assert isinstance(runner.error, SystemExit)
    assert broker(app).depth("taskq") == 0


def test_warm_stop_gives_prefetched_unstarted_tasks_back(app: App, start_worker: StartWorker) -> None:
    started = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    @app.task
    def job(index: int) -> None:
        ran.append(index)
        if index == 0:
            started.set()
            assert release.wait(TIMEOUT)

    for index in range(5):
        job.delay(index)
    runner = start_worker(app, prefetch_multiplier=4)
    assert started.wait(TIMEOUT)
    # The solo pool took a batch of four (acked together); the rest of it had not started.
    runner.worker.stop()
    release.set()
    runner.join()
    assert runner.error is None
    assert ran == [0]
    assert broker(app).depth("taskq") == 4
    assert len(broker(app).claim(["taskq"], 10)) == 4


def test_warm_stop_gives_the_unstarted_rest_of_a_batch_back_also_when_acked_late(
    app: App, start_worker: StartWorker
) -> None:
    started = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    @app.task(acks_late=True)
    def job(index: int) -> None:
        ran.append(index)
        if index == 0:
            started.set()
            assert release.wait(TIMEOUT)

    for index in range(5):
        job.delay(index)
    runner = start_worker(app, prefetch_multiplier=4)
    assert started.wait(TIMEOUT)
    runner.worker.stop()
    release.set()
    runner.join()
    assert runner.error is None
    assert ran == [0]
    assert broker(app).depth("taskq") == 4


def test_lease_keeper_renews_a_long_task_so_no_one_else_can_claim_it(app: App, start_worker: StartWorker) -> None:
    stolen: list[Delivery] = []
    checks: list[int] = []

    @app.task(acks_late=True)
    def long_running() -> str:
        rival = broker(app)
        deadline = time.monotonic() + 1.5  # five leases of 0.3 s
        while time.monotonic() < deadline:
            stolen.extend(rival.claim(["taskq"], 10, lease=30))
            checks.append(1)
            time.sleep(0.05)
        return "done"

    start_worker(app, lease_seconds=0.3)
    assert long_running.delay().get(timeout=TIMEOUT) == "done"
    assert stolen == []
    assert len(checks) > 10
    assert broker(app).depth("taskq") == 0


def test_worker_with_several_pools_and_none_chosen_says_how_to_choose(
    app: App, make_plugin: Callable[..., object]
) -> None:
    second = make_plugin("second", taskq_register_pools=lambda: {"second": "taskq_solo.pool:SoloPool"})
    multi = App(
        "tests",
        broker=str(app.conf["broker_url"]),
        read_config=False,
        extra_plugins=[second],
    )
    multi.conf.update(plugins={"enable": ["solo"]})  # no prefork, whatever this environment has installed
    with pytest.raises(ConfigError, match=r'--pool=NAME or worker_pool = "NAME" in taskq\.toml'):
        multi.Worker()


def test_a_node_name_expands_celerys_escapes() -> None:
    from taskq.worker.worker import node_name

    host = "web1.example.com"
    assert node_name("w1@%h", host) == "w1@web1.example.com"
    assert node_name("w1@%n", host) == "w1@web1"
    assert node_name("%n.%d", host) == "web1.example.com"
    assert node_name("100%%@%n%", host) == "100%@web1%"
    assert node_name("plain@box", host) == "plain@box"

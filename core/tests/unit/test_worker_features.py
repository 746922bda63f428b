"""Worker features beyond the basics: revocation, rate limits, prefetch windows, autoscale."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

from taskq import App, states
from taskq.builtins.memory_drivers import MemoryBackend, MemoryTransport
from taskq.drivers.bootstep import Step
from taskq.errors import BrokerUnavailableError, ConfigError, PoolFeatureError, TaskRevokedError
from taskq.worker.autoscale import parse_autoscale
from taskq.worker.ratelimit import TokenBucket, parse_rate
from taskq.worker.revocations import Revocations
from taskq.worker.worker import Worker

TIMEOUT = 10.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_task_revoked_before_it_arrives_is_skipped_and_recorded(
    app: App, start_worker: Callable[..., object]
) -> None:
    ran: list[int] = []

    @app.task
    def work(n: int) -> int:
        ran.append(n)
        return n

    doomed = work.delay(1)
    app.control.revoke(doomed.id)
    kept = work.delay(2)
    start_worker(app)
    assert kept.get(timeout=TIMEOUT) == 2
    with pytest.raises(TaskRevokedError, match="revoked"):
        doomed.get(timeout=TIMEOUT)
    assert doomed.state == states.REVOKED
    assert ran == [2]


def test_a_task_revoked_while_it_waits_for_its_eta_is_skipped(app: App, start_worker: Callable[..., object]) -> None:
    ran: list[int] = []

    @app.task
    def work(n: int) -> int:
        ran.append(n)
        return n

    start_worker(app)
    later = work.apply_async((1,), countdown=1.5)
    later.revoke()
    with pytest.raises(TaskRevokedError):
        later.get(timeout=TIMEOUT)
    assert ran == []


def test_revocations_are_read_from_where_the_worker_left_off(memory_url: str) -> None:
    backend = MemoryBackend(memory_url)
    backend.revoke(["a", "b"])
    found, cursor = backend.revocations_since(0)
    assert found == [("a", False), ("b", False)]
    backend.revoke(["c"], terminate=True)
    found, cursor = backend.revocations_since(cursor)
    assert found == [("c", True)]
    assert backend.revocations_since(cursor) == ([], cursor)


def test_a_sync_reads_page_after_page_and_stops_at_a_short_one(memory_url: str) -> None:
    backend = MemoryBackend(memory_url)
    backend.revoke_batch = 2
    backend.revoke(["a", "b", "c", "d", "e"])
    calls: list[int] = []
    read = backend.revocations_since

    def counted(cursor: int) -> tuple[list[tuple[str, bool]], int]:
        calls.append(cursor)
        return read(cursor)

    backend.revocations_since = counted  # type: ignore[method-assign]
    revocations = Revocations()
    assert [task_id for task_id, _ in revocations.sync(backend)] == ["a", "b", "c", "d", "e"]
    assert calls == [0, 2, 4]  # the third page held one: nothing more to read


def test_a_backend_that_reads_everything_at_once_is_asked_once(memory_url: str) -> None:
    backend = MemoryBackend(memory_url)
    backend.revoke_batch = None
    backend.revoke(["a", "b", "c"])
    calls: list[int] = []
    read = backend.revocations_since

    def counted(cursor: int) -> tuple[list[tuple[str, bool]], int]:
        calls.append(cursor)
        return read(cursor)

    backend.revocations_since = counted  # type: ignore[method-assign]
    assert len(Revocations().sync(backend)) == 3
    assert calls == [0]


def test_the_state_file_keeps_revocations_across_restarts(tmp_path: Path, memory_url: str) -> None:
    state = tmp_path / "worker.state"
    backend = MemoryBackend(memory_url)
    backend.revoke(["gone"])
    first = Revocations(state)
    first.sync(backend)
    assert "gone" in first
    data = json.loads(state.read_text())
    assert data["revoked"] == ["gone"]
    # A worker restarted without the backend still honours what it saw.
    second = Revocations(state)
    assert "gone" in second
    assert second.cursor == first.cursor


def test_a_worker_with_a_state_file_skips_a_task_revoked_in_an_earlier_run(
    app: App, start_worker: Callable[..., object], tmp_path: Path
) -> None:
    state = tmp_path / "worker.state"
    state.write_text(json.dumps({"cursor": 0, "revoked": ["known-bad"]}))

    @app.task
    def work() -> str:
        return "ran"

    result = work.apply_async(task_id="known-bad")
    start_worker(app, state_db=state)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=TIMEOUT)


def test_an_unreadable_state_file_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "worker.state"
    state.write_text("not json")
    revocations = Revocations(state)
    assert len(revocations) == 0
    assert "unreadable worker state file" in caplog.text


def test_terminating_on_a_pool_that_cannot_lets_the_task_finish(
    app: App, start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    @app.task(bind=True)
    def slow(self) -> str:  # type: ignore[no-untyped-def]
        self.app.control.revoke(self.request.id, terminate=True)
        time.sleep(1.5)  # the worker reads revocations every second
        return "finished"

    start_worker(app)
    assert slow.delay().get(timeout=TIMEOUT) == "finished"


def test_rate_limit_spaces_out_tasks_of_one_type_only(app: App, start_worker: Callable[..., object]) -> None:
    stamps: list[float] = []
    others: list[float] = []

    @app.task(rate_limit="5/s")
    def limited() -> None:
        stamps.append(time.monotonic())

    @app.task
    def free() -> None:
        others.append(time.monotonic())

    start_worker(app)
    results = [limited.delay() for _ in range(4)] + [free.delay() for _ in range(4)]
    for result in results:
        result.get(timeout=TIMEOUT)
    # Four takes at 5/s with a burst of one: at least three intervals of 0.2 s.
    assert stamps[-1] - stamps[0] >= 0.55
    assert len(others) == 4


def test_rate_limited_tasks_that_fill_the_prefetch_window_still_run_at_their_rate(
    app: App, start_worker: Callable[..., object]
) -> None:
    """Six tasks at 2/s: one every half second, about 2.5 s in all. They ran at 0, 5, 10,
    10.5, 11 and 11.5 s: with the window full of waiting tasks the loop slept its idle
    interval without looking at its timer."""
    stamps: list[float] = []

    @app.task(rate_limit="2/s")
    def limited() -> None:
        stamps.append(time.monotonic())

    start_worker(app, pool="solo", prefetch_multiplier=4)
    results = [limited.delay() for _ in range(6)]
    for result in results:
        result.get(timeout=TIMEOUT)
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.45, gaps  # the rate holds
    assert stamps[-1] - stamps[0] < 5.0, gaps  # and nothing waits an idle interval for no reason


def test_token_bucket_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock)
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() == 0.0


@pytest.mark.parametrize(("text", "per_second"), [("10/s", 10.0), ("120/m", 2.0), ("36/h", 0.01), ("4", 4.0), (3, 3.0)])
def test_rate_limits_are_parsed_in_celery_notation(text: str | int, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


def test_a_malformed_rate_limit_says_how_to_write_one() -> None:
    with pytest.raises(ConfigError, match="N/s, N/m or N/h"):
        parse_rate("10 per minute")


def test_prefetch_multiplier_zero_takes_only_what_can_run_now(app: App) -> None:
    worker = Worker(app, pool="solo", prefetch_multiplier=0)
    assert worker.prefetch_count == 1
    assert Worker(app, pool="solo", prefetch_multiplier=4).prefetch_count == 4


class CountingStep(Step):
    """A plugin's step that has the consumer's loop call it, and notes from which thread."""

    name = "counting"
    requires = ("consumer",)
    threads: list[int] = []

    def start(self) -> None:
        CountingStep.threads = []
        assert self.worker.consumer is not None
        self.worker.consumer.call_every(0.01, lambda: CountingStep.threads.append(threading.get_ident()))


def test_the_loop_makes_the_calls_a_step_asked_for_from_its_own_thread(
    make_plugin: Callable[..., object],
    memory_url: str,
    start_worker: Callable[..., object],
    wait_until: Callable[..., None],
) -> None:
    plugin = make_plugin("counting", taskq_register_bootsteps=lambda: {"worker": [f"{__name__}:CountingStep"]})
    app = App("tests", broker=memory_url, read_config=False, extra_plugins=[plugin])
    runner = start_worker(app)
    wait_until(lambda: len(CountingStep.threads) >= 3, "three calls from the loop")
    assert set(CountingStep.threads) == {runner.thread.ident}  # type: ignore[attr-defined]


def test_autoscale_is_parsed_as_max_then_min() -> None:
    assert parse_autoscale("10,3") == (10, 3)
    assert parse_autoscale("4") == (4, 1)
    with pytest.raises(ConfigError, match="MAX >= MIN"):
        parse_autoscale("2,5")


def test_autoscale_on_a_pool_that_cannot_resize_is_refused_at_start(app: App) -> None:
    worker = Worker(app, pool="solo", autoscale="4,1")
    with pytest.raises(PoolFeatureError, match="--autoscale needs a pool that can grow"):
        worker.start()


def test_tasks_due_tomorrow_wait_in_the_broker_not_in_the_worker(
    app: App, start_worker: Callable[..., object], wait_until: Callable[..., None]
) -> None:
    from taskq import _protocol as protocol

    @app.task
    def later() -> None: ...

    # As a Celery client sends them: the ETA in the headers only, no broker delay.
    tomorrow = protocol.to_iso(time.time() + 86400)
    transport = app.new_transport()
    for i in range(500):
        headers = protocol.build_headers(later.name, f"eta-{i}", args=(), kwargs={}, eta=tomorrow)
        transport.publish("taskq", protocol.encode(app.serializers, "json", headers, (), {}))
    runner = start_worker(app)
    consumer = runner.consumer  # type: ignore[attr-defined]
    probe = app.new_transport()
    # Every message went back to the broker with a delay: nothing is due, nothing held.
    wait_until(lambda: not probe.claim(["taskq"], 1, lease=0.01) and not consumer.held, "the ETAs to be deferred")
    assert consumer.timer == []
    assert probe.depth("taskq") == 500


class FlakyTransport(MemoryTransport):
    """An in-process broker that is unreachable for its first few claims (fault injection)."""

    failures_left = 3

    def claim(self, queues, limit, *, lease=30.0):  # type: ignore[no-untyped-def]
        if FlakyTransport.failures_left > 0:
            FlakyTransport.failures_left -= 1
            raise BrokerUnavailableError("connection refused (injected)")
        return super().claim(queues, limit, lease=lease)


def test_a_worker_keeps_trying_when_the_broker_is_unreachable_and_then_consumes(
    make_plugin: Callable[..., object],
    start_worker: Callable[..., object],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    import uuid

    plugin = make_plugin("flaky", taskq_register_transports=lambda: {"flaky": f"{__name__}:FlakyTransport"})
    url = f"flaky://{uuid.uuid4().hex}"
    app = App("flaky", broker=url, backend=f"memory://{uuid.uuid4().hex}", read_config=False, extra_plugins=[plugin])

    @app.task
    def ping() -> str:
        return "pong"

    FlakyTransport.failures_left = 3
    health = tmp_path / "health"
    start_worker(app, health_file=health)
    assert ping.delay().get(timeout=TIMEOUT) == "pong"
    assert "lost the broker" in caplog.text
    assert "answers again" in caplog.text
    assert health.exists()


class StumblingTransport(MemoryTransport):
    """An in-process broker whose first ``started`` call fails as an outage would (fault
    injection), and that counts every start and ack per message."""

    stumbles_left = 1
    started_ids: ClassVar[list[str]] = []
    acked_ids: ClassVar[list[str]] = []

    def started(self, deliveries):  # type: ignore[no-untyped-def]
        if StumblingTransport.stumbles_left > 0:
            StumblingTransport.stumbles_left -= 1
            raise BrokerUnavailableError("connection reset (injected)")
        StumblingTransport.started_ids += [d.message.headers["id"] for d in deliveries]
        super().started(deliveries)

    def ack(self, deliveries):  # type: ignore[no-untyped-def]
        StumblingTransport.acked_ids += [d.message.headers["id"] for d in deliveries]
        super().ack(deliveries)


def test_a_broker_error_in_the_middle_of_a_batch_acks_and_counts_nothing_twice(
    make_plugin: Callable[..., object], start_worker: Callable[..., object], wait_until: Callable[..., None]
) -> None:
    """A solo batch of early, late, early tasks: the late one's start cannot be recorded
    (the broker dropped), so it and the early task after it wait for the broker. The early
    one was acknowledged with the batch: it was acked a second time when the batch went on."""
    import uuid

    plugin = make_plugin("stumbling", taskq_register_transports=lambda: {"stumbling": f"{__name__}:StumblingTransport"})
    url = f"stumbling://{uuid.uuid4().hex}"
    app = App(
        "stumbling", broker=url, backend=f"memory://{uuid.uuid4().hex}", read_config=False, extra_plugins=[plugin]
    )
    ran: list[str] = []

    @app.task
    def early(key: str) -> None:
        ran.append(key)

    @app.task(acks_late=True)
    def late(key: str) -> None:
        ran.append(key)

    StumblingTransport.stumbles_left = 1
    StumblingTransport.started_ids, StumblingTransport.acked_ids = [], []
    sent = [early.delay("e1"), late.delay("l1"), early.delay("e2")]  # waiting before the worker claims them
    start_worker(app, pool="solo")
    wait_until(lambda: sorted(ran) == ["e1", "e2", "l1"], "every task to run")
    ids = [result.id for result in sent]
    wait_until(lambda: sorted(StumblingTransport.acked_ids) == sorted(ids), "every message to be acked")
    assert sorted(ran) == ["e1", "e2", "l1"]
    assert StumblingTransport.started_ids == [ids[1]]
    assert sorted(StumblingTransport.acked_ids) == sorted(ids), "a message was acked twice"


def test_taskq_health_reports_a_stale_or_missing_file(tmp_path: Path) -> None:
    import os

    from click.testing import CliRunner

    from taskq.cli.main import cli

    path = tmp_path / "health"
    runner = CliRunner()
    missing = runner.invoke(cli, ["health", str(path)])
    assert missing.exit_code == 1
    assert "does not exist" in missing.output
    path.touch()
    assert runner.invoke(cli, ["health", str(path)]).exit_code == 0
    old = time.time() - 120
    os.utime(path, (old, old))
    stale = runner.invoke(cli, ["health", str(path), "--max-age", "30"])
    assert stale.exit_code == 1
    assert "last touched" in stale.output


def test_a_running_worker_keeps_a_heartbeat_and_removes_it_when_it_stops(
    app: App, start_worker: Callable[..., object], wait_until: Callable[..., None]
) -> None:
    runner = start_worker(app, hostname="beat@test")
    backend = app.new_backend()
    wait_until(lambda: "beat@test" in backend.workers(), "the first heartbeat")
    info = backend.workers()["beat@test"]
    assert info["pool"] == "solo"
    assert info["queues"] == ["taskq"]
    runner.stop()  # type: ignore[attr-defined]
    assert "beat@test" not in backend.workers()

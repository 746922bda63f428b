"""The health step: the health file, the heartbeat and its stats, beaten from the loop."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import cast

import pytest

from taskq import App
from taskq.builtins.memory_drivers import MemoryBackend
from taskq.worker.consumer import Consumer
from taskq.worker.health import Health
from taskq.worker.worker import Worker

HOSTNAME = "health@test"


class NoHeartbeatBackend(MemoryBackend):
    """A result backend that keeps no heartbeats, and counts how often it was asked to."""

    asked = 0

    def heartbeat(self, hostname: str, info: Mapping[str, object], ttl: float) -> None:
        NoHeartbeatBackend.asked += 1
        raise NotImplementedError("NoHeartbeatBackend cannot keep worker heartbeats")


@pytest.fixture
def parts(app: App, tmp_path: Path) -> Iterator[tuple[Worker, Consumer]]:
    """A worker with a health file and its consumer, built but not started."""
    worker = Worker(app, pool="solo", hostname=HOSTNAME, health_file=tmp_path / "health")
    consumer = Consumer(worker)
    yield worker, consumer
    consumer.close()


def test_a_beat_touches_the_health_file_and_writes_the_heartbeat(app: App, parts: tuple[Worker, Consumer]) -> None:
    worker, consumer = parts

    @app.task
    def ping() -> str:
        return "pong"

    Health(worker, consumer).beat()
    assert worker.health_path is not None and worker.health_path.exists()
    beat = app.new_backend().workers()[HOSTNAME]
    assert (beat["pool"], beat["queues"], beat["processed"], beat["active"]) == ("solo", ["taskq"], 0, [])
    assert ping.name in cast("list[str]", beat["registered"])


def test_the_helper_beats_for_a_loop_busy_in_one_long_task(
    parts: tuple[Worker, Consumer], wait_until: Callable[..., None]
) -> None:
    worker, consumer = parts
    health = Health(worker, consumer, interval=0.01)
    health.beat_while_busy()
    try:
        consumer.busy_since = time.monotonic()
        assert worker.health_path is not None
        wait_until(worker.health_path.exists, "the helper's beat")
    finally:
        health.stop()


def test_a_worker_without_a_health_file_or_a_result_backend_has_nothing_to_beat(memory_url: str) -> None:
    app = App("tests", broker=memory_url, backend="disabled", read_config=False)
    worker = Worker(app, pool="solo")
    consumer = Consumer(worker)
    try:
        assert not Health(worker, consumer).is_needed
    finally:
        consumer.close()


def test_a_backend_that_keeps_no_heartbeats_is_asked_once(
    make_plugin: Callable[..., object], memory_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = make_plugin("nobeat", taskq_register_result_backends=lambda: {"nobeat": f"{__name__}:NoHeartbeatBackend"})
    app = App(
        "tests", broker=memory_url, backend=f"nobeat://{uuid.uuid4().hex}", read_config=False, extra_plugins=[plugin]
    )
    worker = Worker(app, pool="solo")
    consumer = Consumer(worker)
    NoHeartbeatBackend.asked = 0
    try:
        health = Health(worker, consumer)
        with caplog.at_level(logging.INFO, logger="taskq.worker.health"):
            health.beat()
            health.beat()
    finally:
        consumer.close()
    assert NoHeartbeatBackend.asked == 1
    assert caplog.text.count("keeps no heartbeats") == 1


def test_a_running_worker_touches_its_health_file_from_its_first_turn(
    app: App, start_worker: Callable[..., object], wait_until: Callable[..., None], tmp_path: Path
) -> None:
    health = tmp_path / "health"
    start_worker(app, health_file=health)
    wait_until(health.exists, "the health file")

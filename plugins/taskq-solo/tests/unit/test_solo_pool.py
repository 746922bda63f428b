"""The solo pool: inline execution, outcome reporting, and a real worker on it."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from taskq import App
from taskq.plugins import load_plugins
from taskq.testing import start_worker
from taskq_solo.pool import SoloPool


def test_apply_runs_the_target_inline_and_reports_its_value() -> None:
    pool = SoloPool()
    seen: list[object] = []
    pool.apply(
        lambda a, b: (threading.current_thread(), a + b), (2, 3), callback=seen.append, error_callback=seen.append
    )
    assert seen == [(threading.current_thread(), 5)]


def test_an_exception_in_the_target_goes_to_the_error_callback() -> None:
    pool = SoloPool()
    values: list[object] = []
    errors: list[BaseException] = []

    def boom() -> None:
        raise ValueError("nope")

    pool.apply(boom, (), callback=values.append, error_callback=errors.append)
    assert values == []
    assert isinstance(errors[0], ValueError)


def test_the_pool_is_busy_while_a_task_runs() -> None:
    pool = SoloPool()
    during: list[int] = []
    pool.apply(lambda: during.append(pool.free_slots), (), callback=lambda _: None, error_callback=lambda _: None)
    assert during == [0]
    assert pool.free_slots == 1


def test_concurrency_other_than_one_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        pool = SoloPool(4)
    assert pool.concurrency == 1
    assert "one task at a time" in caplog.text


def test_the_plugin_offers_the_solo_pool_through_its_entry_point() -> None:
    plugins = load_plugins()
    assert plugins.resolve_driver("pools", "solo") is SoloPool


def test_a_worker_on_the_solo_pool_runs_tasks_and_stores_results() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    app = App("solo-test", broker=url, backend=url, read_config=False)

    @app.task
    def multiply(x: int, y: int) -> int:
        return x * y

    with start_worker(app, pool="solo") as worker:
        assert worker.pool_name == "solo"
        assert worker.concurrency == 1
        assert [multiply.delay(i, 3).get(timeout=10) for i in range(5)] == [0, 3, 6, 9, 12]

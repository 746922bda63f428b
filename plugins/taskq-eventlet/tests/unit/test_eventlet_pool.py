"""The eventlet plugin and pool: cheap plugin module, patching only when chosen, and the
pool on its own hub thread in an unpatched process (this one: nothing here patches)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import eventlet
import pytest

from taskq import App
from taskq.errors import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded, WorkerLostError
from taskq.plugins import load_plugins
from taskq.testing import start_worker
from taskq.testing.conformance.pool import Outcome
from taskq_eventlet.pool import EventletPool, is_patched

# Seconds a child interpreter may take.
CHILD_TIMEOUT = 60.0


def run_python(code: str) -> str:
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
    )
    assert child.returncode == 0, child.stdout + child.stderr
    return child.stdout.strip()


# ---- The plugin module ------------------------------------------------------------------


def test_importing_the_plugin_module_does_not_import_eventlet() -> None:
    assert run_python("import sys, taskq_eventlet.plugin; print('eventlet' in sys.modules)") == "False"


def test_early_init_leaves_the_process_alone_when_another_pool_is_chosen() -> None:
    code = (
        "from taskq.plugins import load_plugins\n"
        "load_plugins().early_init('solo', ['worker', '--pool=solo'])\n"
        "import sys; print('eventlet' in sys.modules)\n"
    )
    assert run_python(code) == "False"


def test_early_init_monkey_patches_when_the_eventlet_pool_is_chosen() -> None:
    code = (
        "from taskq.plugins import load_plugins\n"
        "load_plugins().early_init('eventlet', ['worker', '--pool=eventlet'])\n"
        "import time, eventlet, taskq_eventlet.pool as p; print(p.is_patched(), time.sleep is eventlet.sleep)\n"
    )
    assert run_python(code) == "True True"


def test_the_plugin_offers_the_eventlet_pool_through_its_entry_point() -> None:
    assert load_plugins().resolve_driver("pools", "eventlet") is EventletPool


# ---- The pool, unpatched: its own hub thread ------------------------------------------


@pytest.fixture
def make_pool() -> Iterator[Callable[..., EventletPool]]:
    made: list[EventletPool] = []

    def make(concurrency: int = 2, **options: object) -> EventletPool:
        pool = EventletPool(concurrency, **options)
        pool.start()
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.stop(wait=False)


def run(pool: EventletPool, target: Callable[..., object], *args: object, **limits: object) -> Outcome:
    outcome = Outcome()
    pool.apply(target, args, callback=outcome.callback, error_callback=outcome.error_callback, **limits)  # type: ignore[arg-type]
    return outcome


def green_interval(seconds: float) -> tuple[float, float, str]:
    start = time.monotonic()
    eventlet.sleep(seconds)
    return start, time.monotonic(), threading.current_thread().name


def green_nap_until_soft_limit(seconds: float) -> str:
    try:
        eventlet.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "not interrupted"


def test_this_test_process_is_not_monkey_patched() -> None:
    assert not is_patched()


def test_unpatched_the_pool_warns_and_runs_on_its_own_hub_thread(
    make_pool: Callable[..., EventletPool], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        pool = make_pool()
    assert "without monkey-patching" in caplog.text
    assert pool.info()["hub"] == "own thread (unpatched)"
    _, _, thread = run(pool, green_interval, 0.01).wait().value  # type: ignore[misc]
    assert thread == "taskq-eventlet-hub"


def test_unpatched_cooperative_jobs_overlap(make_pool: Callable[..., EventletPool]) -> None:
    pool = make_pool(50)
    outcomes = [run(pool, green_interval, 0.3) for _ in range(50)]
    spans = [o.wait().value for o in outcomes]
    assert max(s for s, _, _ in spans) < min(e for _, e, _ in spans)  # type: ignore[misc]


def test_unpatched_jobs_beyond_the_concurrency_wait_for_a_slot(make_pool: Callable[..., EventletPool]) -> None:
    pool = make_pool(2)
    outcomes = [run(pool, green_interval, 0.2) for _ in range(4)]
    assert pool.free_slots == 0
    spans = sorted(o.wait().value for o in outcomes)  # type: ignore[type-var]
    assert spans[2][0] >= min(spans[0][1], spans[1][1])  # the third started once one ended


def test_unpatched_the_soft_limit_is_catchable(make_pool: Callable[..., EventletPool]) -> None:
    pool = make_pool(1)
    assert run(pool, green_nap_until_soft_limit, 30.0, soft_time_limit=0.2).wait().value == "cleaned up"


def test_unpatched_the_hard_limit_stops_only_its_job(make_pool: Callable[..., EventletPool]) -> None:
    pool = make_pool(2)
    stuck = run(pool, eventlet.sleep, 30.0, job_id="stuck", hard_time_limit=0.3)
    other = run(pool, green_interval, 0.6)
    assert isinstance(stuck.wait().error, TimeLimitExceeded)
    assert other.wait().error is None


def test_unpatched_the_hard_limit_cannot_be_caught_by_except_exception(make_pool: Callable[..., EventletPool]) -> None:
    def stubborn() -> str:
        try:
            eventlet.sleep(30)
        except Exception:
            return "caught"
        return "slept"

    outcome = run(make_pool(1), stubborn, hard_time_limit=0.2).wait()
    assert isinstance(outcome.error, TimeLimitExceeded)


def test_unpatched_terminate_stops_the_job(make_pool: Callable[..., EventletPool]) -> None:
    pool = make_pool(1)
    outcome = run(pool, eventlet.sleep, 30.0, job_id="victim")
    deadline = time.monotonic() + 10
    while not pool.terminate_job("victim"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert isinstance(outcome.wait().error, Terminated)
    assert pool.terminate_job("victim") is False


def test_unpatched_a_cold_stop_reports_each_unfinished_job_once(make_pool: Callable[..., EventletPool]) -> None:
    pool = make_pool(1)
    running = run(pool, eventlet.sleep, 30.0)
    queued = run(pool, eventlet.sleep, 30.0)
    pool.stop(wait=False)
    assert isinstance(running.wait().error, WorkerLostError)
    assert isinstance(queued.wait().error, WorkerLostError)
    assert (running.calls, queued.calls) == (1, 1)


def test_unpatched_a_warm_stop_gives_up_after_stop_timeout(make_pool: Callable[..., EventletPool]) -> None:
    pool = make_pool(1, stop_timeout=0.2)
    outcome = run(pool, eventlet.sleep, 30.0)
    pool.stop(wait=True)
    assert isinstance(outcome.wait(1.0).error, WorkerLostError)


def test_an_in_process_worker_runs_tasks_on_the_unpatched_pool() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    app = App("eventlet-test", broker=url, backend=url, read_config=False)

    @app.task
    def nap(key: int) -> int:
        eventlet.sleep(0.2)
        return key

    with start_worker(app, pool="eventlet", concurrency=20) as worker:
        assert worker.pool_name == "eventlet"
        results = [nap.delay(i) for i in range(20)]
        assert [r.get(timeout=10) for r in results] == list(range(20))

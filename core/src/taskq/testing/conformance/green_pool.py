"""The green thread pool contract: a :class:`~taskq.drivers.support.greenpool.GreenPool` and its plugin.

    class TestGeventPool(GreenPoolContract):
        @pytest.fixture
        def pool_class(self) -> type[Pool]:
            return GeventPool

        @pytest.fixture
        def green_sleep(self) -> Callable[[float], object]:
            return gevent.sleep

The test process stays unpatched, so the pool runs on a hub thread of its own there; the
plugin's monkey-patching is checked in child interpreters, and :class:`PoolContract`
runs again in a child pytest patched by the plugin's ``early_init``, as ``taskq worker``
patches.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from taskq.app import App
from taskq.drivers.support.greenpool import GreenPool
from taskq.errors import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded, WorkerLostError
from taskq.plugins import load_plugins
from taskq.testing.conformance.pool import OUTCOME_TIMEOUT, _PoolSuite
from taskq.testing.worker import start_worker

# Seconds a child interpreter may take.
CHILD_TIMEOUT = 60.0
# Seconds the pool contract may take in a monkey-patched child pytest.
PATCHED_SUITE_TIMEOUT = 150.0


# ---- Green thread pools, unpatched ------------------------------------------------------
#
# Jobs get the library's cooperative sleep as their first argument: unpatched, a plain
# time.sleep would stall the pool's hub thread.


def green_interval(sleep: Callable[[float], object], seconds: float) -> tuple[float, float, str]:
    start = time.monotonic()
    sleep(seconds)
    return start, time.monotonic(), threading.current_thread().name


def green_nap_catching(sleep: Callable[[float], object], seconds: float, caught: type[BaseException]) -> str:
    try:
        sleep(seconds)
    except caught:
        return "caught"
    return "slept"


def run_python(code: str) -> str:
    """What ``code`` prints in a new interpreter, where patching cannot leak into other tests."""
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
    )
    assert child.returncode == 0, child.stdout + child.stderr
    return child.stdout.strip()


#: The suite a monkey-patched child pytest runs: the pool contract on the pool the
#: plugin offers under the name ``{name}``, in a process the plugin has patched.
PATCHED_SUITE = """
import pytest

from taskq.plugins import load_plugins
from taskq.testing.conformance import PoolContract


class TestPoolMonkeyPatched(PoolContract):
    @pytest.fixture
    def pool_class(self):
        return load_plugins().resolve_driver("pools", {name!r})

    def test_the_process_is_monkey_patched(self, make_pool):
        assert make_pool(1).patched, "the plugin's early_init did not monkey-patch this process"
"""

#: Patches as ``taskq worker --pool=NAME`` does (the plugin's early_init), then runs pytest.
PATCH_THEN_PYTEST = (
    "import sys, warnings\n"
    "from taskq.plugins import load_plugins\n"
    "with warnings.catch_warnings():\n"
    "    warnings.simplefilter('ignore')  # a library's notice on import, e.g. eventlet's deprecation\n"
    "    load_plugins().early_init(sys.argv[1], ['worker', '--pool=' + sys.argv[1]])\n"
    "import pytest\n"
    "sys.exit(pytest.main(sys.argv[2:]))\n"
)


class GreenPoolContract(_PoolSuite):
    """Reusable tests for a :class:`taskq.drivers.support.greenpool.GreenPool` and its plugin. Provide
    the fixtures ``pool_class`` and ``green_sleep``, the library's cooperative sleep
    (``gevent.sleep``), as taskq-gevent's ``tests/unit/test_gevent_pool.py`` does.

    The test process stays unpatched, so the pool runs on a hub thread of its own; the
    plugin's monkey-patching is checked in child interpreters. The pool's ``library`` is
    also its ``--pool`` name. :class:`PoolContract` runs on the pool too, in a child pytest
    patched by the plugin's ``early_init`` as ``taskq worker`` patches.
    """

    def test_the_pool_passes_the_pool_contract_in_a_monkey_patched_process(
        self, pool_class: type[GreenPool], tmp_path: Path
    ) -> None:
        suite = tmp_path / "test_monkey_patched_pool.py"
        suite.write_text(PATCHED_SUITE.format(name=pool_class.library))
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                PATCH_THEN_PYTEST,
                pool_class.library,
                str(suite),
                "-q",
                "-rs",
                "-p",
                "no:cacheprovider",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=PATCHED_SUITE_TIMEOUT,
            check=False,
        )
        report = child.stdout + child.stderr
        assert child.returncode == 0, f"the pool contract failed under monkey-patching:\n{report}"
        assert " passed" in report and " failed" not in report, report

    @pytest.fixture
    def green_sleep(self) -> Callable[[float], object]:
        raise NotImplementedError("define a green_sleep fixture returning your library's sleep")

    # ---- The plugin module ------------------------------------------------------------

    def test_importing_the_plugin_module_does_not_import_the_library(self, pool_class: type[GreenPool]) -> None:
        plugins = load_plugins()
        module = plugins.infos[plugins.drivers("pools")[pool_class.library].plugin].module
        assert run_python(f"import sys, {module}; print({pool_class.library!r} in sys.modules)") == "False"

    def test_early_init_leaves_the_process_alone_when_another_pool_is_chosen(self, pool_class: type[GreenPool]) -> None:
        code = (
            "from taskq.plugins import load_plugins\n"
            "load_plugins().early_init('solo', ['worker', '--pool=solo'])\n"
            f"import sys; print({pool_class.library!r} in sys.modules)\n"
        )
        assert run_python(code) == "False"

    def test_early_init_monkey_patches_when_the_pool_is_chosen(self, pool_class: type[GreenPool]) -> None:
        name = pool_class.library
        code = (
            "from taskq.plugins import load_plugins\n"
            f"plugins = load_plugins(); plugins.early_init({name!r}, ['worker', '--pool={name}'])\n"
            f"import time, {name} as library\n"
            f"pool = plugins.resolve_driver('pools', {name!r})(1); pool.start(); pool.stop()\n"
            "print(pool.patched, time.sleep is library.sleep)\n"
        )
        assert run_python(code) == "True True"

    def test_the_plugin_offers_the_pool_through_its_entry_point(self, pool_class: type[GreenPool]) -> None:
        assert load_plugins().resolve_driver("pools", pool_class.library) is pool_class

    # ---- The pool, unpatched: its own hub thread ----------------------------------------

    def test_this_test_process_is_not_monkey_patched(self, make_pool: Callable[..., GreenPool]) -> None:
        assert make_pool(1).patched is False

    def test_unpatched_the_pool_warns_and_runs_on_its_own_hub_thread(
        self,
        make_pool: Callable[..., GreenPool],
        green_sleep: Callable[[float], object],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        with caplog.at_level(logging.WARNING):
            pool = make_pool()
        assert "without monkey-patching" in caplog.text
        assert pool.info()["hub"] == "own thread (unpatched)"
        _, _, thread = cast(
            "tuple[float, float, str]", self.submit(pool, green_interval, (green_sleep, 0.01)).wait().value
        )
        assert thread == f"taskq-{pool.library}-hub"

    def test_unpatched_cooperative_jobs_overlap(
        self, make_pool: Callable[..., GreenPool], green_sleep: Callable[[float], object]
    ) -> None:
        pool = make_pool(50)
        outcomes = [self.submit(pool, green_interval, (green_sleep, 0.3)) for _ in range(50)]
        spans = [cast("tuple[float, float, str]", o.wait().value) for o in outcomes]
        assert max(s for s, _, _ in spans) < min(e for _, e, _ in spans)

    def test_unpatched_jobs_beyond_the_concurrency_wait_for_a_slot(
        self, make_pool: Callable[..., GreenPool], green_sleep: Callable[[float], object]
    ) -> None:
        pool = make_pool(2)
        outcomes = [self.submit(pool, green_interval, (green_sleep, 0.2)) for _ in range(4)]
        assert pool.free_slots == 0
        spans = sorted(cast("tuple[float, float, str]", o.wait().value) for o in outcomes)
        assert spans[2][0] >= min(spans[0][1], spans[1][1])  # the third started once one ended

    def test_unpatched_the_soft_limit_is_catchable(
        self, make_pool: Callable[..., GreenPool], green_sleep: Callable[[float], object]
    ) -> None:
        caught = (green_sleep, 30.0, SoftTimeLimitExceeded)
        assert self.submit(make_pool(1), green_nap_catching, caught, soft_time_limit=0.2).wait().value == "caught"

    def test_unpatched_the_hard_limit_stops_only_its_job(
        self, make_pool: Callable[..., GreenPool], green_sleep: Callable[[float], object]
    ) -> None:
        pool = make_pool(2)
        stuck = self.submit(pool, green_sleep, (30.0,), job_id="stuck", hard_time_limit=0.3)
        other = self.submit(pool, green_interval, (green_sleep, 0.6))
        assert isinstance(stuck.wait().error, TimeLimitExceeded)
        assert other.wait().error is None

    def test_unpatched_the_hard_limit_cannot_be_caught_by_except_exception(
        self, make_pool: Callable[..., GreenPool], green_sleep: Callable[[float], object]
    ) -> None:
        outcome = self.submit(make_pool(1), green_nap_catching, (green_sleep, 30.0, Exception), hard_time_limit=0.2)
        assert isinstance(outcome.wait().error, TimeLimitExceeded)

    def test_unpatched_terminate_stops_the_job(
        self, make_pool: Callable[..., GreenPool], green_sleep: Callable[[float], object]
    ) -> None:
        pool = make_pool(1)
        outcome = self.submit(pool, green_sleep, (30.0,), job_id="victim")
        deadline = time.monotonic() + OUTCOME_TIMEOUT
        while not pool.terminate_job("victim"):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.01)
        assert isinstance(outcome.wait().error, Terminated)
        assert pool.terminate_job("victim") is False

    def test_unpatched_a_cold_stop_reports_each_unfinished_job_once(
        self, make_pool: Callable[..., GreenPool], green_sleep: Callable[[float], object]
    ) -> None:
        pool = make_pool(1)
        running = self.submit(pool, green_sleep, (30.0,))
        queued = self.submit(pool, green_sleep, (30.0,))
        pool.stop(wait=False)
        assert isinstance(running.wait().error, WorkerLostError)
        assert isinstance(queued.wait().error, WorkerLostError)
        assert (running.calls, queued.calls) == (1, 1)

    def test_unpatched_a_warm_stop_gives_up_after_stop_timeout(
        self, make_pool: Callable[..., GreenPool], green_sleep: Callable[[float], object]
    ) -> None:
        pool = make_pool(1, stop_timeout=0.2)
        outcome = self.submit(pool, green_sleep, (30.0,))
        pool.stop(wait=True)
        assert isinstance(outcome.wait(1.0).error, WorkerLostError)

    def test_an_in_process_worker_runs_tasks_on_the_unpatched_pool(
        self, pool_class: type[GreenPool], green_sleep: Callable[[float], object]
    ) -> None:
        name = pool_class.library
        url = f"memory://{uuid.uuid4().hex}"
        app = App(f"{name}-test", broker=url, backend=url, read_config=False)

        @app.task
        def nap(key: int) -> int:
            green_sleep(0.2)
            return key

        with start_worker(app, pool=name, concurrency=20) as worker:
            assert worker.pool_name == name
            results = [nap.delay(i) for i in range(20)]
            assert [r.get(timeout=10) for r in results] == list(range(20))


__all__ = ["GreenPoolContract"]

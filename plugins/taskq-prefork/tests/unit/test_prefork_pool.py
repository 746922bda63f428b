"""The prefork pool beyond the conformance kit: crashes, limits, signals, stopping, a worker on it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import App, signals
from taskq.errors import SoftTimeLimitExceeded, TaskqError, Terminated, TimeLimitExceeded, WorkerLostError
from taskq.plugins import load_plugins
from taskq.testing import start_worker
from taskq.testing.conformance.pool import Outcome
from taskq_prefork._child import resident_kib
from taskq_prefork._turns import STALL
from taskq_prefork.pool import PreforkPool

# Seconds any condition in these tests may take.
DEADLINE = 20.0


# ---- Jobs (module level: children find them by reference) ------------------------------


def pid() -> int:
    return os.getpid()


def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def exit_abruptly(code: int) -> None:
    os._exit(code)


def ignore_the_soft_limit(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.01)
        except SoftTimeLimitExceeded:
            continue  # keeps going: only the hard limit stops it
    return "finished"


def ignore_sigterm_and_sleep(seconds: float) -> str:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return "woke"


_hoard: list[bytearray] = []


def hoard(mebibytes: int) -> tuple[int, int]:
    """Keep ``mebibytes`` MiB alive in this child; return (pid, resident KiB)."""
    block = bytearray(mebibytes * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1  # touch every page so it is resident
    _hoard.append(block)
    return os.getpid(), resident_kib()


def unpicklable_value() -> object:
    return threading.Lock()


class StubbornError(Exception):
    def __init__(self, first: str, second: str) -> None:
        super().__init__(first)
        self.second = second

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("this error refuses to be pickled")


def raise_unpicklable() -> None:
    raise StubbornError("first", "second")


def signal_handlers() -> dict[str, object]:
    return {
        "SIGINT": signal.getsignal(signal.SIGINT),
        "SIGTERM": signal.getsignal(signal.SIGTERM),
        "SIGQUIT": signal.getsignal(signal.SIGQUIT),
    }


def write_marker(path: str) -> str:
    Path(path).write_text(str(os.getpid()), encoding="utf-8")
    return path


# ---- Helpers ------------------------------------------------------------------------


@pytest.fixture
def make_pool() -> Iterator[Callable[..., PreforkPool]]:
    made: list[PreforkPool] = []

    def make(concurrency: int = 1, **options: object) -> PreforkPool:
        pool = PreforkPool(concurrency, **options)  # type: ignore[arg-type]  # Pool's keyword options
        pool.start()
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.stop(wait=False)


def run(pool: PreforkPool, job: Callable[..., object], *args: object, **limits: object) -> Outcome:
    outcome = Outcome()
    pool.apply(job, args, callback=outcome.callback, error_callback=outcome.error_callback, **limits)  # type: ignore[arg-type]  # job_id and limits
    return outcome


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)


def child_pids(pool: PreforkPool) -> list[int]:
    return list(pool.info()["processes"])  # type: ignore[call-overload]  # a list of pids


def is_alive(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): look at its state.
    try:
        state = Path(f"/proc/{process_id}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ---- Crashes ------------------------------------------------------------------------


def test_a_child_killed_from_outside_is_replaced_and_its_job_reported_lost(make_pool) -> None:
    pool = make_pool(1)
    victim = run(pool, pid_after, 30.0, job_id="victim")
    wait_until(lambda: pool.running == 1, "the job to start")
    [doomed] = child_pids(pool)
    os.kill(doomed, signal.SIGKILL)
    victim.wait()
    assert isinstance(victim.error, WorkerLostError)
    assert "SIGKILL" in str(victim.error)
    assert "victim" in str(victim.error)
    survivor = run(pool, pid).wait()
    assert survivor.value not in (None, doomed)
    assert pool.free_slots == 1


def test_a_child_that_exits_in_the_middle_of_a_job_is_reported_lost(make_pool) -> None:
    pool = make_pool(1)
    outcome = run(pool, exit_abruptly, 3).wait()
    assert isinstance(outcome.error, WorkerLostError)
    assert "exit code 3" in str(outcome.error)
    assert run(pool, pid).wait().value is not None


def test_the_replacement_is_ready_before_the_loss_is_reported(make_pool) -> None:
    pool = make_pool(1)
    slots_when_reported: list[int] = []
    done = threading.Event()

    def on_error(_error: BaseException) -> None:
        slots_when_reported.append(pool.free_slots)
        done.set()

    pool.apply(exit_abruptly, (1,), callback=lambda _: done.set(), error_callback=on_error)
    assert done.wait(DEADLINE)
    assert slots_when_reported == [1]


def test_an_idle_child_killed_from_outside_is_replaced(make_pool) -> None:
    pool = make_pool(2)
    doomed = child_pids(pool)[0]
    os.kill(doomed, signal.SIGKILL)
    wait_until(lambda: doomed not in child_pids(pool) and len(child_pids(pool)) == 2, "a replacement")
    assert pool.free_slots == 2


# ---- Time limits --------------------------------------------------------------------


def test_a_job_that_ignores_the_soft_limit_is_stopped_by_the_hard_one(make_pool) -> None:
    pool = make_pool(1)
    outcome = run(pool, ignore_the_soft_limit, 30.0, job_id="stubborn", soft_time_limit=0.2, hard_time_limit=0.8)
    outcome.wait()
    assert isinstance(outcome.error, TimeLimitExceeded)
    assert "stubborn" in str(outcome.error)
    assert run(pool, sleep, 0.0).wait().value == "woke"


def test_an_uncaught_soft_limit_is_the_jobs_exception(make_pool) -> None:
    pool = make_pool(1)
    outcome = run(pool, sleep, 30.0, soft_time_limit=0.2).wait()
    assert isinstance(outcome.error, SoftTimeLimitExceeded)


def test_the_hard_limit_kills_only_the_job_past_it(make_pool) -> None:
    pool = make_pool(2)
    stuck = run(pool, sleep, 30.0, job_id="stuck", hard_time_limit=0.3)
    fine = run(pool, sleep, 0.6, job_id="fine", hard_time_limit=10.0)
    assert isinstance(stuck.wait().error, TimeLimitExceeded)
    assert fine.wait().value == "woke"


def test_the_soft_limit_alarm_is_disarmed_after_the_job(make_pool) -> None:
    pool = make_pool(1)
    assert run(pool, sleep, 0.0, soft_time_limit=0.2).wait().value == "woke"
    # The next job runs past the old deadline without a soft limit of its own.
    assert run(pool, sleep, 0.4).wait().value == "woke"


# ---- Terminate ------------------------------------------------------------------------


def test_terminate_reports_terminated(make_pool) -> None:
    pool = make_pool(1)
    outcome = run(pool, sleep, 30.0, job_id="doomed")
    wait_until(lambda: pool.terminate_job("doomed"), "the job to start")
    assert isinstance(outcome.wait().error, Terminated)


def test_terminate_kills_a_child_that_ignores_sigterm(make_pool) -> None:
    pool = make_pool(1)
    outcome = run(pool, ignore_sigterm_and_sleep, 30.0, job_id="deaf")
    time.sleep(0.2)  # let it install its handler
    assert pool.terminate_job("deaf")
    assert isinstance(outcome.wait().error, Terminated)
    assert run(pool, sleep, 0.0).wait().value == "woke"


def test_terminating_a_queued_job_removes_it(make_pool) -> None:
    pool = make_pool(1)
    running = run(pool, sleep, 0.5)
    queued = run(pool, sleep, 0.0, job_id="queued")
    assert pool.terminate_job("queued")
    assert isinstance(queued.wait().error, Terminated)
    assert running.wait().value == "woke"


# ---- Per-child limits ---------------------------------------------------------------------


def test_max_memory_per_child_replaces_the_child_after_the_job_that_crosses_it(make_pool) -> None:
    probe = make_pool(1)
    _, baseline = run(probe, hoard, 0).wait().value  # type: ignore[misc]  # (pid, KiB)
    pool = make_pool(1, max_memory_per_child=baseline + 32 * 1024)
    first_pid, _ = run(pool, hoard, 0).wait().value  # type: ignore[misc]
    same_pid, _ = run(pool, hoard, 1).wait().value  # type: ignore[misc]
    assert same_pid == first_pid, "a child under the limit is kept"
    fat_pid, rss = run(pool, hoard, 64).wait().value  # type: ignore[misc]
    assert fat_pid == first_pid and rss > baseline + 32 * 1024
    assert run(pool, pid).wait().value != fat_pid, "the child over the limit is replaced"


def test_max_tasks_per_child_counts_every_job(make_pool) -> None:
    pool = make_pool(1, max_tasks_per_child=3)
    pids = [run(pool, pid).wait().value for _ in range(6)]
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5]


# ---- Values and signals -----------------------------------------------------------------


def test_an_unpicklable_return_value_is_reported_not_lost(make_pool) -> None:
    pool = make_pool(1)
    outcome = run(pool, unpicklable_value).wait()
    assert isinstance(outcome.error, TaskqError)
    assert "lock" in str(outcome.error).lower()


def test_an_unpicklable_exception_keeps_its_type_name(make_pool) -> None:
    pool = make_pool(1)
    outcome = run(pool, raise_unpicklable).wait()
    assert isinstance(outcome.error, TaskqError)
    assert "StubbornError" in str(outcome.error)


def test_children_ignore_sigint_and_reset_the_parents_handlers(make_pool) -> None:
    # The parent's own handlers (a test run in the background starts with SIGQUIT ignored).
    previous = {number: signal.signal(number, lambda *_: None) for number in (signal.SIGTERM, signal.SIGQUIT)}
    try:
        pool = make_pool(1)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    handlers = run(pool, signal_handlers).wait().value
    assert handlers == {"SIGINT": signal.SIG_IGN, "SIGTERM": signal.SIG_DFL, "SIGQUIT": signal.SIG_DFL}
    outcome = run(pool, pid_after, 0.3)
    wait_until(lambda: pool.running == 1, "the job to start")
    os.kill(child_pids(pool)[0], signal.SIGINT)
    assert outcome.wait().value == child_pids(pool)[0]


# ---- Resizing and stopping ------------------------------------------------------------


def test_shrink_retires_idle_children_and_grow_adds_them(make_pool) -> None:
    pool = make_pool(3)
    before = child_pids(pool)
    pool.shrink(2)
    assert pool.free_slots == 1
    wait_until(lambda: len(child_pids(pool)) == 1, "two children to leave")
    wait_until(lambda: sum(is_alive(p) for p in before) == 1, "two children to exit")
    pool.grow(1)
    wait_until(lambda: pool.free_slots == 2, "a new child")


def test_shrinking_below_the_running_jobs_waits_for_them(make_pool) -> None:
    pool = make_pool(2)
    outcomes = [run(pool, sleep, 0.3) for _ in range(2)]
    pool.shrink(1)
    assert pool.free_slots == 0
    assert [o.wait().value for o in outcomes] == ["woke", "woke"]
    wait_until(lambda: len(child_pids(pool)) == 1 and pool.free_slots == 1, "one child left")


def test_a_cold_stop_reports_running_jobs_as_lost_and_kills_every_child() -> None:
    pool = PreforkPool(2)
    pool.start()
    pids = child_pids(pool)
    outcome = run(pool, ignore_sigterm_and_sleep, 60.0)
    wait_until(lambda: pool.running == 1, "the job to start")
    time.sleep(0.2)  # let it install its handler
    started = time.monotonic()
    pool.stop(wait=False)
    assert time.monotonic() - started < 10
    assert isinstance(outcome.wait(1.0).error, WorkerLostError)
    assert not any(is_alive(p) for p in pids)


def test_a_warm_stop_closes_idle_children_gracefully() -> None:
    pool = PreforkPool(2)
    pool.start()
    pids = child_pids(pool)
    pool.stop(wait=True)
    assert not any(is_alive(p) for p in pids)


def test_apply_after_stop_is_reported_not_run() -> None:
    pool = PreforkPool(1)
    pool.start()
    pool.stop()
    outcome = run(pool, pid).wait(1.0)
    assert isinstance(outcome.error, WorkerLostError)


def test_children_leave_when_the_parent_dies(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, time
        from taskq_prefork.pool import PreforkPool

        pool = PreforkPool(2)
        pool.start()
        print(" ".join(str(p) for p in pool.info()["processes"]), flush=True)
        os._exit(0)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=DEADLINE)
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    try:
        wait_until(lambda: not any(is_alive(p) for p in pids), "orphaned children to leave")
    finally:
        for p in pids:
            if is_alive(p):
                os.kill(p, signal.SIGKILL)


# ---- Plugin and worker ------------------------------------------------------------------


def test_the_plugin_offers_the_prefork_pool_through_its_entry_point() -> None:
    assert load_plugins().resolve_driver("pools", "prefork") is PreforkPool


def test_a_worker_on_the_prefork_pool_runs_tasks_in_its_children(tmp_path: Path) -> None:
    # memory:// lives in one process: results stored by a child stay there, so the tasks
    # leave files instead (the real broker and backend tests are in the top-level tests/).
    url = f"memory://{uuid.uuid4().hex}"
    app = App("prefork-test", broker=url, result_backend="disabled", read_config=False)

    @app.task
    def mark(path: str) -> str:
        return write_marker(path)

    paths = [tmp_path / f"m{i}" for i in range(10)]
    with start_worker(app, pool="prefork", concurrency=2) as worker:
        assert worker.pool_name == "prefork"
        children = set(child_pids(worker.pool))  # type: ignore[arg-type]  # a PreforkPool
        for path in paths:
            mark.delay(str(path))
        wait_until(lambda: all(p.exists() for p in paths), "every task to run")
    writers = {int(p.read_text(encoding="utf-8")) for p in paths}
    assert writers <= children and os.getpid() not in writers


def test_a_job_given_to_a_child_that_just_died_idle_goes_to_its_replacement(make_pool) -> None:
    pool = make_pool(1)
    outcomes = []
    for _ in range(10):
        [doomed] = child_pids(pool)
        os.kill(doomed, signal.SIGKILL)
        wait_until(lambda doomed=doomed: not is_alive(doomed), "the child to die")
        # The supervisor may or may not have noticed yet: either way the job must run.
        outcomes.append(run(pool, pid))
        outcomes[-1].wait()
    assert [type(o.error) for o in outcomes] == [type(None)] * 10


# ---- Polled turns -------------------------------------------------------------------


def test_a_caller_that_polls_gets_outcomes_and_the_next_queued_job_starts_at_once(
    make_pool: Callable[..., PreforkPool],
) -> None:
    pool = make_pool(1)
    assert pool.room == 3  # one for the idle child, two queued for it
    first, second = run(pool, sleep, 0.2), run(pool, pid)
    assert pool.room == 0  # one queued: topped up only once the queue has emptied
    deadline = time.monotonic() + 10
    while not (first.done and second.done) and time.monotonic() < deadline:
        pool.poll(0.5)
    assert first.value == "woke" and isinstance(second.value, int)
    assert pool.room == 3


def test_the_supervisor_stands_in_for_a_caller_that_stopped_polling(make_pool: Callable[..., PreforkPool]) -> None:
    # The consumer attached (it polled) and then blocked elsewhere without release():
    # the hard limit must still be kept, and a dead child still be replaced.
    pool = make_pool(1)
    stuck = run(pool, sleep, 30.0, job_id="stuck", hard_time_limit=0.3)
    pool.poll(0.01)
    started = time.monotonic()
    stuck.wait(10)
    assert isinstance(stuck.error, TimeLimitExceeded)
    assert time.monotonic() - started < 0.3 + 2 * STALL + 1.0
    assert isinstance(run(pool, pid).wait(10).value, int)  # the replacement child runs jobs


# ---- The worker's before_create_process, process_init and process_shutdown -------------------


def test_each_child_calls_process_init_first_and_process_shutdown_last(tmp_path: Path) -> None:
    """What Celery's worker_process_init and worker_process_shutdown signals hang on."""
    log = tmp_path / "lives.log"

    def note(event: str) -> Callable[[], None]:
        def write() -> None:
            with log.open("a", encoding="utf-8") as out:
                out.write(f"{event} {os.getpid()}\n")

        return write

    pool = PreforkPool(2, max_tasks_per_child=1)
    pool.process_init, pool.process_shutdown = note("init"), note("shutdown")
    pool.start()
    try:
        first = run(pool, pid).wait().value  # its child retires after one job: a new one starts
        wait_until(lambda: log.exists() and log.read_text().count("init") >= 3, "the replacement child's init")
    finally:
        pool.stop(wait=True)
    lines = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
    inits = [int(found) for event, found in lines if event == "init"]
    shutdowns = [int(found) for event, found in lines if event == "shutdown"]
    assert first in inits and first in shutdowns
    assert len(set(inits)) == len(inits) >= 3 and sorted(shutdowns) == sorted(inits)
    assert lines.index(["init", str(first)]) < lines.index(["shutdown", str(first)])


def test_before_create_process_is_called_in_the_parent_before_each_child_is_forked(tmp_path: Path) -> None:
    """What Celery's worker_before_create_process signal hangs on: replacements count too."""
    log = tmp_path / "forks.log"

    def note(event: str) -> Callable[[], None]:
        def write() -> None:
            with log.open("a", encoding="utf-8") as out:
                out.write(f"{event} {os.getpid()}\n")

        return write

    pool = PreforkPool(2, max_tasks_per_child=1)
    pool.before_create_process, pool.process_init = note("before"), note("init")
    pool.start()
    try:
        run(pool, pid).wait()  # its child retires after one job: a third child is forked
        wait_until(lambda: log.read_text().count("init") == 3, "the replacement child's init")
    finally:
        pool.stop(wait=True)
    lines = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
    befores = [int(found) for event, found in lines if event == "before"]
    assert befores == [os.getpid()] * 3  # in this process, once per child
    events = [event for event, _ in lines]  # the n-th child starts after the n-th call
    assert all(events[:n].count("before") >= events[:n].count("init") for n in range(len(events) + 1))


def test_a_prefork_worker_sends_worker_before_create_process_from_its_own_process() -> None:
    heard: list[tuple[object, int]] = []

    def receiver(sender: object = None, **_: object) -> None:
        heard.append((sender, os.getpid()))

    signals.worker_before_create_process.connect(receiver, dispatch_uid="prefork-test")
    app = App("prefork-test", broker=f"memory://{uuid.uuid4().hex}", result_backend="disabled", read_config=False)
    try:
        with start_worker(app, pool="prefork", concurrency=2) as worker:
            assert heard == [(worker.pool, os.getpid())] * 2
    finally:
        signals.worker_before_create_process.disconnect(dispatch_uid="prefork-test")

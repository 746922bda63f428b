"""Beat as users run it: ``taskq worker -B``, and ``taskq beat`` beside a worker, on SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from e2e_helpers import runs, wait_until

from taskq.errors import EXIT_CONFIG

# Seconds to wait for a few periodic runs, and for a process to stop.
DEADLINE = 30.0
# A schedule that sends record(7) every 0.3 s.
SCHEDULE = json.dumps({"tick": {"task": "e2e_app.tasks.record", "schedule": 0.3, "args": [7]}})


def ticks(e2e_env: dict[str, str]) -> int:
    return sum(1 for event, key, _ in runs(e2e_env) if (event, key) == ("ran", "7"))


def test_a_worker_with_beat_runs_the_periodic_task_and_stops_on_sigterm(
    e2e_env: dict[str, str], spawn_worker: Callable[..., object]
) -> None:
    worker = spawn_worker("-B", "-s", "beat.db", env={"TASKQ_BEAT_SCHEDULE": SCHEDULE})
    worker.wait_ready()  # type: ignore[attr-defined]
    wait_until(lambda: ticks(e2e_env) >= 3, DEADLINE, "three periodic runs")
    worker.signal(signal.SIGTERM)  # type: ignore[attr-defined]
    assert worker.wait() == 0  # type: ignore[attr-defined]
    log = worker.log()  # type: ignore[attr-defined]
    assert "beat: 1 periodic task(s)" in log
    assert "beat stopped" in log


def start_beat(tmp_path: Path, e2e_env: dict[str, str], name: str) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "taskq", "beat", "-A", "e2e_app.tasks", "-s", "beat.db", "-l", "info"],
            env={**os.environ, **e2e_env, "TASKQ_BEAT_SCHEDULE": SCHEDULE},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return popen, log_path


def test_taskq_beat_feeds_a_worker_and_a_second_beat_on_its_file_is_refused(
    tmp_path: Path, e2e_env: dict[str, str], spawn_worker: Callable[..., object]
) -> None:
    worker = spawn_worker()
    beat, beat_log = start_beat(tmp_path, e2e_env, "beat")
    try:
        wait_until(lambda: ticks(e2e_env) >= 3, DEADLINE, "three periodic runs")
        second, second_log = start_beat(tmp_path, e2e_env, "beat2")
        assert second.wait(DEADLINE) == EXIT_CONFIG
        text = second_log.read_text()
        assert f"another beat (pid {beat.pid}) is using the schedule file" in text
        beat.send_signal(signal.SIGTERM)
        assert beat.wait(DEADLINE) == 0
        assert "beat stopped" in beat_log.read_text()
    finally:
        if beat.poll() is None:
            os.killpg(beat.pid, signal.SIGKILL)
            beat.wait(DEADLINE)
        worker.kill()  # type: ignore[attr-defined]

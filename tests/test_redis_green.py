"""taskq-redis's own client in a process that gevent or eventlet monkey-patched, as a green worker is.

eventlet's patching removes ``select.poll`` and a green socket ignores the kernel's read
timeout; the client must still connect, wait for replies by yielding to the hub, and
time out on a server that does not answer (tests/e2e_app/green_redis.py does the work).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from conftest import HERE
from e2e_helpers import require_redis

pytestmark = pytest.mark.integration

# Seconds the probe process may take, start-up included.
PROBE_TIMEOUT = 30.0


@pytest.fixture(scope="module", params=["gevent", "eventlet"])
def report(request: pytest.FixtureRequest) -> dict[str, object]:
    """What the probe found under one library's monkey-patching (run once per library)."""
    library = request.param
    require_redis()
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "e2e_app.green_redis", library, f"taskq-green-{uuid.uuid4().hex[:12]}:"],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
        env={**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_a_connection_in_a_patched_process_knows_its_socket_is_green_and_works(report):
    assert report["green"] is True
    assert report["ping"] is True


def test_waiting_for_a_message_lets_other_green_threads_run(report):
    assert report["wait"] is None
    assert report["wait_ticks"] > 1


def test_a_published_message_is_seen_without_blocking(report):
    assert report["can_read_idle"] is False
    assert report["message"] is True


def test_a_server_that_never_answers_times_out_while_other_green_threads_run(report):
    assert report["silent"] == "TimeoutError"
    assert report["silent_ticks"] > 1

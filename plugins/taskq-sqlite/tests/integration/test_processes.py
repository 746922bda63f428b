"""Several processes share one SQLite file: result waits, chord counters, an instance used after fork.

What every transport shared between processes must do (exclusive claims, leases across
kill -9, wake-ups) is checked by the conformance kit, in test_conformance.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time

import pytest

from taskq import states
from taskq.drivers.transport import Message
from taskq.testing.conformance.processes import finish
from taskq_sqlite.backend import SqliteBackend
from taskq_sqlite.transport import SqliteTransport

pytestmark = pytest.mark.integration

# Seconds any helper process may take before the test gives up on it.
PROCESS_TIMEOUT = 60


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter with ``args`` as ``sys.argv[1:]``."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def message(number: int) -> Message:
    return Message(str(number).encode(), {"id": f"task-{number}", "task": "tests.noop"})


STORER = """
    import sys, time
    from taskq import states
    from taskq_sqlite.backend import SqliteBackend

    backend = SqliteBackend(sys.argv[1])
    backend.get(sys.argv[2])  # open the file before the clock starts
    time.sleep(0.3)
    backend.store_result(sys.argv[2], 42, states.SUCCESS)
"""


def test_wait_for_returns_promptly_when_another_process_stores_the_result(url: str) -> None:
    backend = SqliteBackend(url)
    storer = run_python(STORER, url, "task-xyz")
    started = time.monotonic()
    meta = backend.wait_for("task-xyz", timeout=60)
    assert time.monotonic() - started < PROCESS_TIMEOUT / 2
    assert meta["status"] == states.SUCCESS
    assert meta["result"] == 42
    finish(storer)
    backend.close()


COUNTER = """
    import json, sys
    from taskq_sqlite.backend import SqliteBackend

    backend = SqliteBackend(sys.argv[1])
    print(json.dumps([backend.incr_chord_counter("chord-1") for _ in range(100)]))
"""


def test_chord_counter_is_atomic_across_processes(url: str) -> None:
    SqliteBackend(url).close()  # create the file before they race
    counters = [run_python(COUNTER, url) for _ in range(4)]
    values: list[int] = []
    for counter in counters:
        values.extend(json.loads(finish(counter)))
    assert sorted(values) == list(range(1, 401))


def _publish_from_forked_child(transport: SqliteTransport) -> None:
    transport.wait(["other"], 0.001)  # announces a socket of its own, leaves the parent's alone
    assert transport._wakeups.waiter is not None and transport._wakeups.waiter.pid == os.getpid()
    transport.publish("forked", message(99))
    transport.close()


def test_an_instance_used_after_fork_opens_its_own_connection(transport: SqliteTransport) -> None:
    transport.publish("forked", message(1))
    transport.wait(["other"], 0.001)  # the parent holds a connection and a wake-up socket
    child = multiprocessing.get_context("fork").Process(target=_publish_from_forked_child, args=(transport,))
    child.start()
    child.join(PROCESS_TIMEOUT)
    assert child.exitcode == 0
    bodies = sorted(int(d.message.body) for d in transport.claim(["forked"], 10))
    assert bodies == [1, 99]
    assert transport._wakeups.waiter is not None and os.path.exists(str(transport._wakeups.waiter.announcement))

"""Several processes share one SQLite file: exclusive claims, leases across kill -9, wake-ups."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import states
from taskq.transport import Delivery, Message
from taskq_sqlite.backend import SqliteBackend
from taskq_sqlite.transport import SqliteTransport

pytestmark = pytest.mark.integration

# Seconds any helper process may take before the test gives up on it.
PROCESS_TIMEOUT = 60
# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 15.0
# Upper bound, in seconds, for a wake-up that should take a millisecond.
PROMPT = 5.0


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/shared.db"


@pytest.fixture
def transport(url: str) -> Iterator[SqliteTransport]:
    transport = SqliteTransport(url)
    transport.connect()
    yield transport
    transport.close()


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter with ``args`` as ``sys.argv[1:]``."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for ``process`` and return its output; fail with its stderr if it failed."""
    try:
        out, err = process.communicate(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"helper process still running after {PROCESS_TIMEOUT}s:\n{err}")
    assert process.returncode == 0, err
    return out


def message(number: int) -> Message:
    return Message(str(number).encode(), {"id": f"task-{number}", "task": "tests.noop"})


CONSUMER = """
    import json, sys
    from taskq_sqlite.transport import SqliteTransport

    transport = SqliteTransport(sys.argv[1])
    seen, empty = [], 0
    while empty < 3:
        deliveries = transport.claim(["work"], 7, lease=120)
        if not deliveries:
            empty += 1
            transport.wait(["work"], 0.05)
            continue
        empty = 0
        seen.extend(int(d.message.body) for d in deliveries)
        transport.ack(deliveries)
    print(json.dumps(seen))
"""


def test_processes_sharing_a_file_never_claim_the_same_message_and_together_claim_all(
    transport: SqliteTransport, url: str
) -> None:
    total = 3000
    consumers = [run_python(CONSUMER, url) for _ in range(4)]
    for start in range(0, total, 500):  # publishing while they consume
        transport.publish_many([("work", message(n), 0.0) for n in range(start, start + 500)])
    claimed: list[int] = []
    for consumer in consumers:
        claimed.extend(json.loads(finish(consumer)))
    assert len(claimed) == len(set(claimed)), "a message was handed out twice"
    assert sorted(claimed) == list(range(total))
    assert transport.depth("work") == 0


def test_messages_survive_closing_and_reopening_the_file(url: str) -> None:
    first = SqliteTransport(url)
    first.publish("durable", message(1))
    first.publish("durable", message(2), delay=0.2)
    first.claim(["durable"], 1, lease=0.2)  # held by an instance that goes away
    first.close()

    reopened = SqliteTransport(url)
    found: list[int] = []
    end = time.monotonic() + DEADLINE
    while len(found) < 2 and time.monotonic() < end:
        deliveries = reopened.claim(["durable"], 10)
        found.extend(int(d.message.body) for d in deliveries)
        reopened.wait(["durable"], 0.5)
    reopened.close()
    assert sorted(found) == [1, 2]


HOLDER = """
    import sys, time
    from taskq_sqlite.transport import SqliteTransport

    transport = SqliteTransport(sys.argv[1])
    lease = float(sys.argv[2])
    deliveries = transport.claim(["held"], 1, lease=lease)
    assert len(deliveries) == 1
    print("claimed", flush=True)
    while True:  # the worker's lease keeper, until it is killed
        time.sleep(lease / 5)
        transport.renew(deliveries, lease=lease)
"""


@pytest.fixture
def holder(transport: SqliteTransport, url: str) -> Iterator[subprocess.Popen[str]]:
    """A process that claimed the only message of queue ``held`` under a 1 s lease and renews it."""
    transport.publish("held", message(7))
    process = run_python(HOLDER, url, "1.0")
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "claimed", process.stderr and process.stderr.read()
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=PROCESS_TIMEOUT)


def test_a_live_renewing_holder_keeps_its_message_past_several_lease_periods(
    transport: SqliteTransport, holder: subprocess.Popen[str]
) -> None:
    until = time.monotonic() + 3.5  # three and a half 1 s leases
    while time.monotonic() < until:
        assert transport.claim(["held"], 10) == []
        transport.wait(["held"], 0.1)
    assert holder.poll() is None


def test_a_message_whose_holder_was_killed_is_claimable_again_after_its_lease(
    transport: SqliteTransport, holder: subprocess.Popen[str]
) -> None:
    assert transport.claim(["held"], 10) == []
    holder.send_signal(signal.SIGKILL)
    holder.wait(PROCESS_TIMEOUT)
    end = time.monotonic() + DEADLINE
    deliveries: list[Delivery] = []
    while not deliveries and time.monotonic() < end:
        transport.wait(["held"], 1.0)  # wakes when the dead lease lapses, no polling needed
        deliveries = transport.claim(["held"], 10)
    assert [d.message.body for d in deliveries] == [b"7"]
    assert deliveries[0].deliveries == 2


PUBLISHER = """
    import sys, time
    from taskq.transport import Delivery, Message
    from taskq_sqlite.transport import SqliteTransport

    transport = SqliteTransport(sys.argv[1])
    transport.connect()
    print("ready", flush=True)
    sys.stdin.readline()
    time.sleep(0.2)  # the parent is blocked in wait() by now
    transport.publish("wake", Message(b"hi", {}))
"""


def test_wait_returns_promptly_when_another_process_publishes(transport: SqliteTransport, url: str) -> None:
    transport.wait(["wake"], 0.001)  # binds and announces the wake-up socket
    assert transport._waiter is not None and transport._waiter.is_registered
    publisher = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PUBLISHER), url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert publisher.stdout is not None and publisher.stdin is not None
    assert publisher.stdout.readline().strip() == "ready"
    publisher.stdin.write("go\n")
    publisher.stdin.flush()
    started = time.monotonic()
    transport.wait(["wake"], timeout=60)
    assert time.monotonic() - started < PROMPT
    finish(publisher)
    assert len(transport.claim(["wake"], 10)) == 1


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
    assert transport._waiter is not None and transport._waiter.pid == os.getpid()
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
    assert transport._waiter is not None and os.path.exists(str(transport._waiter.announcement))

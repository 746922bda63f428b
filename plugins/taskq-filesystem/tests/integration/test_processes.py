"""Several processes share one root directory: exclusive claims, leases across kill -9, wake-ups."""

from __future__ import annotations

import json
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
from taskq_filesystem.backend import FilesystemBackend
from taskq_filesystem.transport import FilesystemTransport

pytestmark = pytest.mark.integration

# Seconds any helper process may take before the test gives up on it.
PROCESS_TIMEOUT = 60
# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 15.0
# Upper bound, in seconds, for a wake-up that should take a millisecond.
PROMPT = 5.0


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"file://{tmp_path}/shared"


@pytest.fixture
def transport(url: str) -> Iterator[FilesystemTransport]:
    transport = FilesystemTransport(url)
    transport.connect()
    yield transport
    transport.close()


def run_python(code: str, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter with ``args`` as ``sys.argv[1:]``."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE if stdin else None,
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
    from taskq_filesystem.transport import FilesystemTransport

    transport = FilesystemTransport(sys.argv[1])
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


def test_processes_sharing_a_directory_never_claim_the_same_message_and_together_claim_all(
    transport: FilesystemTransport, url: str
) -> None:
    total = 2000
    transport.publish_many([("work", message(n), 0.0) for n in range(200)])  # a head start
    consumers = [run_python(CONSUMER, url) for _ in range(4)]
    for start in range(200, total, 200):  # publishing while they consume
        transport.publish_many([("work", message(n), 0.0) for n in range(start, start + 200)])
    claimed: list[int] = []
    for consumer in consumers:
        claimed.extend(json.loads(finish(consumer)))
    assert len(claimed) == len(set(claimed)), "a message was handed out twice"
    assert sorted(claimed) == list(range(total))
    assert transport.depth("work") == 0


def test_messages_survive_closing_and_reopening_the_directory(url: str) -> None:
    first = FilesystemTransport(url)
    first.publish("durable", message(1))
    first.publish("durable", message(2), delay=0.2)
    first.claim(["durable"], 1, lease=0.2)  # held by an instance that goes away
    first.close()

    reopened = FilesystemTransport(url)
    assert reopened.depth("durable") == 2
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
    from taskq_filesystem.transport import FilesystemTransport

    transport = FilesystemTransport(sys.argv[1])
    lease = float(sys.argv[2])
    deliveries = transport.claim(["held"], 1, lease=lease)
    assert len(deliveries) == 1
    print("claimed", flush=True)
    while True:  # the worker's lease keeper, until it is killed
        time.sleep(lease / 5)
        transport.renew(deliveries, lease=lease)
"""


@pytest.fixture
def holder(transport: FilesystemTransport, url: str) -> Iterator[subprocess.Popen[str]]:
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
    transport: FilesystemTransport, holder: subprocess.Popen[str]
) -> None:
    until = time.monotonic() + 3.5  # three and a half 1 s leases
    while time.monotonic() < until:
        assert transport.claim(["held"], 10) == []
        transport.wait(["held"], 0.1)
    assert holder.poll() is None
    assert transport.depth("held") == 1


def test_a_message_whose_holder_was_killed_is_claimable_again_after_its_lease(
    transport: FilesystemTransport, holder: subprocess.Popen[str]
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


def test_a_delayed_message_waits_as_a_file_and_another_process_claims_it_when_due(
    transport: FilesystemTransport, url: str
) -> None:
    transport.publish("later", message(3), delay=0.5)
    assert transport.depth("later") == 1
    assert transport.claim(["later"], 10) == []
    code = """
        import sys, time
        from taskq_filesystem.transport import FilesystemTransport

        transport = FilesystemTransport(sys.argv[1])
        end = time.monotonic() + 15
        while time.monotonic() < end:
            found = transport.claim(["later"], 10)
            if found:
                transport.ack(found)
                print(found[0].message.body.decode())
                break
            transport.wait(["later"], 5)
    """
    assert finish(run_python(code, url)).strip() == "3"
    assert transport.depth("later") == 0


def test_dead_letters_are_kept_in_files_with_their_reason_and_outlive_the_instance(url: str) -> None:
    first = FilesystemTransport(url)
    first.publish("poison", message(9))
    [delivery] = first.claim(["poison"], 1)
    first.dead_letter(delivery, "unknown task 'tests.noop'")
    first.close()

    reopened = FilesystemTransport(url)
    [dead] = reopened.dead_letters()
    assert (dead.queue, dead.reason, dead.message.body) == ("poison", "unknown task 'tests.noop'", b"9")
    assert reopened.depth("poison") == 0
    reopened.close()


def test_an_unreadable_message_file_is_set_aside_and_the_rest_are_claimed(
    transport: FilesystemTransport, tmp_path: Path
) -> None:
    transport.publish("mixed", message(1))
    waiting = tmp_path / "shared" / "queues" / "mixed" / "waiting"
    (waiting / "0000000000000000001-broken-0").write_bytes(b"{not json")
    assert [d.message.body for d in transport.claim(["mixed"], 10)] == [b"1"]
    assert [p.suffix for p in (tmp_path / "shared" / "queues" / "mixed" / "dead").iterdir()] == [".unreadable"]


@pytest.mark.parametrize("driver", [FilesystemTransport, FilesystemBackend])
def test_a_root_under_a_regular_file_is_a_clear_unavailable_error(tmp_path: Path, driver: type) -> None:
    from taskq.errors import BackendUnavailableError, BrokerUnavailableError

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a directory should be")
    instance = driver(f"file://{blocker}/taskq")
    error = BrokerUnavailableError if driver is FilesystemTransport else BackendUnavailableError
    with pytest.raises(error, match=rf"cannot use {blocker}/taskq as the taskq .*check that {blocker} exists"):
        if driver is FilesystemTransport:
            instance.publish("q", message(1))
        else:
            instance.get("key")


PUBLISHER = """
    import sys, time
    from taskq.transport import Message
    from taskq_filesystem.transport import FilesystemTransport

    transport = FilesystemTransport(sys.argv[1])
    transport.connect()
    print("ready", flush=True)
    sys.stdin.readline()
    time.sleep(0.2)  # the parent is blocked in wait() by now
    transport.publish("wake", Message(b"hi", {}))
"""


def test_wait_returns_promptly_when_another_process_publishes(transport: FilesystemTransport, url: str) -> None:
    transport.wait(["wake"], 0.001)  # announces the wake-up socket
    assert transport._waiter is not None and transport._waiter.is_registered
    publisher = run_python(PUBLISHER, url, stdin=True)
    assert publisher.stdout is not None and publisher.stdin is not None
    assert publisher.stdout.readline().strip() == "ready"
    publisher.stdin.write("go\n")
    publisher.stdin.flush()
    started = time.monotonic()
    transport.wait(["wake"], timeout=60)
    assert time.monotonic() - started < PROMPT
    finish(publisher)
    assert len(transport.claim(["wake"], 10)) == 1


def test_an_announcement_left_by_a_dead_process_is_removed_by_the_next_writer(
    transport: FilesystemTransport, tmp_path: Path
) -> None:
    stale = tmp_path / "shared" / "wake" / "q-999999-00000000deadbeef"
    stale.touch()
    transport.publish("any", message(1))
    assert not stale.exists()


STORER = """
    import sys, time
    from taskq import states
    from taskq_filesystem.backend import FilesystemBackend

    backend = FilesystemBackend(sys.argv[1])
    backend.get(sys.argv[2])  # set up before the clock starts
    time.sleep(0.3)
    backend.store_result(sys.argv[2], 42, states.SUCCESS)
"""


def test_wait_for_returns_promptly_when_another_process_stores_the_result(url: str) -> None:
    backend = FilesystemBackend(url)
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
    from taskq_filesystem.backend import FilesystemBackend

    backend = FilesystemBackend(sys.argv[1])
    print(json.dumps([backend.incr_chord_counter("chord-1") for _ in range(100)]))
"""


def test_chord_counter_is_atomic_across_processes(url: str) -> None:
    FilesystemBackend(url).get("warm-up")  # create the folders before they race
    counters = [run_python(COUNTER, url) for _ in range(4)]
    values: list[int] = []
    for counter in counters:
        values.extend(json.loads(finish(counter)))
    assert sorted(values) == list(range(1, 401))


def test_expired_result_files_are_deleted_by_the_sweep_and_kept_ones_stay(url: str, tmp_path: Path) -> None:
    backend = FilesystemBackend(url)
    backend.set("short", b"1", expires=0.01)
    backend.set("kept", b"2")
    end = time.monotonic() + DEADLINE
    while backend.get("short") is not None and time.monotonic() < end:
        time.sleep(0.02)
    assert backend.remove_expired() == 1
    assert sorted(os.listdir(tmp_path / "shared" / "results")) == ["kept"]
    assert backend.get("kept") == b"2"
    backend.close()

"""One root directory shared and reopened: dead letters, damaged files, wake-up announcements, results.

What every transport shared between processes must do (exclusive claims, leases across
kill -9, wake-ups) is checked by the conformance kit, in test_conformance.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from taskq import states
from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Message
from taskq.testing.conformance.processes import finish
from taskq_filesystem.backend import FilesystemBackend
from taskq_filesystem.transport import FilesystemTransport

pytestmark = pytest.mark.integration

# Seconds any helper process may take before the test gives up on it.
PROCESS_TIMEOUT = 60
# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 15.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "shared"


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


def test_an_unreadable_message_file_is_handed_out_with_the_reason_beside_the_rest(
    transport: FilesystemTransport, tmp_path: Path
) -> None:
    transport.publish("mixed", message(1))
    waiting = tmp_path / "shared" / "queues" / "mixed" / "waiting"
    (waiting / "0000000000000000001-broken-0").write_bytes(b"{not json")
    broken, good = transport.claim(["mixed"], 10)
    assert broken.message.body == b"{not json"
    assert "not JSON" in str(broken.message.headers[UNDECODABLE_HEADER])
    assert good.message.body == b"1"


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

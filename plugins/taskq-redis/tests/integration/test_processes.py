"""Several processes on one Redis: exclusive claims, leases across kill -9 and renewals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from taskq.testing.conformance.transport import make_message
from taskq_redis.transport import RedisTransport

pytestmark = pytest.mark.integration

# Seconds any helper process may take before the test gives up on it.
PROCESS_TIMEOUT = 60
# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 15.0
# A short lease, in seconds, for the tests where a lease must lapse or be renewed.
LEASE = 0.6


@pytest.fixture
def transport(redis_url: str, prefix: str) -> Iterator[RedisTransport]:
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
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
    try:
        out, err = process.communicate(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"helper process timed out; stderr:\n{err}")
    assert process.returncode == 0, f"helper failed with {process.returncode}:\n{err}"
    return out


def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()  # the helper prints within moments; the test timeout bounds it
    assert line, f"helper exited early: {process.communicate()[1]}"
    return line.strip()


CLAIMER = """
import json, random, sys, time
from taskq_redis.transport import RedisTransport
url, prefix, queue = sys.argv[1:4]
transport = RedisTransport(url, {"global_keyprefix": prefix})
transport.connect()
print("ready", flush=True)
seen, idle_since = [], time.monotonic() + 5.0  # until the publisher starts
while time.monotonic() - idle_since < 1.0:
    batch = transport.claim([queue], random.randint(1, 40))
    if batch:
        idle_since = time.monotonic()
        seen += [d.message.headers["id"] for d in batch]
        time.sleep(0.001)  # some work, so the others get their turn
        transport.ack(batch)
print(json.dumps(seen))
"""


def test_several_processes_claiming_never_get_the_same_message(
    transport: RedisTransport, redis_url: str, prefix: str
) -> None:
    queue = "shared"
    sent = [make_message() for _ in range(3000)]
    claimers = [run_python(CLAIMER, redis_url, prefix, queue) for _ in range(4)]
    try:
        for claimer in claimers:
            assert read_line(claimer) == "ready"
        for start in range(0, len(sent), 100):
            transport.publish_many((queue, message, 0.0) for message in sent[start : start + 100])
        claimed = [json.loads(finish(claimer)) for claimer in claimers]
    finally:
        for claimer in claimers:
            claimer.kill()
    everything = [task_id for ids in claimed for task_id in ids]
    assert len(everything) == len(set(everything)) == len(sent)
    assert set(everything) == {m.headers["id"] for m in sent}
    assert sum(1 for ids in claimed if ids) >= 2  # they really did share the work
    assert transport.depth(queue) == 0


HOLDER = """
import sys, time
from taskq_redis.transport import RedisTransport
url, prefix, queue, lease, renew_for = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
transport = RedisTransport(url, {"global_keyprefix": prefix})
deliveries = []
while not deliveries:
    deliveries = transport.claim([queue], 10, lease=lease)
print("held", deliveries[0].message.headers["id"], flush=True)
until = time.monotonic() + renew_for
while time.monotonic() < until:
    time.sleep(lease / 4)
    assert transport.renew(deliveries, lease=lease) == 1
if renew_for > 0:
    transport.ack(deliveries)
    print("acked", flush=True)
else:
    time.sleep(3600)  # holds without renewing until killed
"""


def test_a_killed_holders_message_comes_back_after_its_lease(
    transport: RedisTransport, redis_url: str, prefix: str
) -> None:
    sent = make_message()
    transport.publish("work", sent)
    holder = run_python(HOLDER, redis_url, prefix, "work", str(LEASE), "0")
    try:
        assert read_line(holder) == f"held {sent.headers['id']}"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=PROCESS_TIMEOUT)
        killed = time.monotonic()
        again = []
        while not again:
            assert time.monotonic() - killed < DEADLINE, "the killed holder's message did not come back"
            transport.wait(["work"], 1.0)
            again = transport.claim(["work"], 10)
    finally:
        holder.kill()
        holder.communicate()
    assert [d.message.headers["id"] for d in again] == [sent.headers["id"]]
    assert again[0].deliveries == 2


def test_a_live_renewing_holder_keeps_its_message_past_several_leases(
    transport: RedisTransport, redis_url: str, prefix: str
) -> None:
    transport.publish("work", make_message())
    held_for = LEASE * 6
    holder = run_python(HOLDER, redis_url, prefix, "work", str(LEASE), str(held_for))
    try:
        assert read_line(holder).startswith("held ")
        started = time.monotonic()
        while time.monotonic() - started < held_for - LEASE / 2:
            assert transport.claim(["work"], 10) == [], "a renewed lease was handed to a second claimer"
            time.sleep(LEASE / 10)
        assert read_line(holder) == "acked"
        finish(holder)
    finally:
        holder.kill()
    assert transport.depth("work") == 0
    assert transport.claim(["work"], 10) == []

"""What the child processes of the multi-process transport contract run.

Started by :class:`taskq.testing.conformance.processes.ChildProcesses` as::

    python -m taskq.testing.conformance._child ROLE RECIPE QUEUE [ARGUMENT]

``RECIPE`` is a :class:`~taskq.testing.conformance.processes.TransportRecipe` as JSON:
the child makes its own transport from it, as a worker process would. A child speaks
by lines on stdout; the parent tells it to go on with a line on its stdin. Every loop here
ends after :data:`CHILD_DEADLINE` seconds, so a child never outlives a broken test for
long; a child that gives up exits with a message on stderr, which the parent shows.
"""

from __future__ import annotations

import json
import select
import sys
import time
from collections.abc import Callable

from taskq.drivers.transport import Delivery, Message, Transport
from taskq.testing.conformance.processes import TransportRecipe

# Seconds any loop of a child may run before it gives up; below the parent's own limit,
# so the child's reason is what the test reports.
CHILD_DEADLINE = 45.0
# Seconds an idle consumer waits for news before it claims again.
IDLE_WAIT = 0.05
# A consumer's lease, in seconds: far longer than the test, so it never lapses in it.
CONSUMER_LEASE = 120.0
# Seconds a publisher lets pass after being told to go on, so that the parent is
# blocked in wait() by the time the message arrives.
PUBLISH_LAG = 0.2
# Most events an event sender puts in one batch; its batches grow from 1 to this, and again.
EVENT_BATCH_MOST = 7


def ids(deliveries: list[Delivery]) -> list[str]:
    return [str(delivery.message.headers["id"]) for delivery in deliveries]


def told_to_go_on(timeout: float) -> bool:
    """Whether the parent wrote to our stdin (or closed it) within ``timeout`` seconds."""
    readable, _, _ = select.select([sys.stdin], [], [], timeout)
    return bool(readable)


def consume(transport: Transport, queue: str, argument: str) -> None:
    """Claim batches of ``argument`` messages and ack them until publishing is over and
    the queue is empty; print the ids claimed, as a JSON list."""
    limit = int(argument)
    print("ready", flush=True)
    seen: list[str] = []
    publishing_is_over = False
    end = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < end:
        batch = transport.claim([queue], limit, lease=CONSUMER_LEASE)
        if batch:
            seen.extend(ids(batch))
            transport.ack(batch)
            continue
        publishing_is_over = publishing_is_over or told_to_go_on(0)
        # depth counts claimed messages too: zero means every consumer has acked its last
        if publishing_is_over and transport.depth(queue) == 0:
            print(json.dumps(seen), flush=True)
            return
        transport.wait([queue], IDLE_WAIT)
    sys.exit(f"consumer: {queue!r} still not empty after {CHILD_DEADLINE}s (publishing over: {publishing_is_over})")


def hold(transport: Transport, queue: str, argument: str) -> None:
    """Claim one message under a lease of ``argument`` seconds, print ``held <id>``, and
    renew the lease, as a worker's lease keeper does, until killed."""
    _hold(transport, queue, argument, start=False)


def run(transport: Transport, queue: str, argument: str) -> None:
    """As :func:`hold`, but record the message's start first (:meth:`Transport.started`), as a
    worker does right before it runs a task it acks late: a task that then kills its worker."""
    _hold(transport, queue, argument, start=True)


def _hold(transport: Transport, queue: str, argument: str, *, start: bool) -> None:
    lease = float(argument)
    deliveries: list[Delivery] = []
    end = time.monotonic() + CHILD_DEADLINE
    while not deliveries:
        if time.monotonic() > end:
            sys.exit(f"holder: nothing to claim on {queue!r} after {CHILD_DEADLINE}s")
        deliveries = transport.claim([queue], 1, lease=lease)
        if not deliveries:
            transport.wait([queue], IDLE_WAIT)
    if start:
        transport.started(deliveries)
    print("held", *ids(deliveries), flush=True)
    end = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < end:
        time.sleep(lease / 5)
        if transport.capabilities.leases and transport.renew(deliveries, lease=lease) != 1:
            sys.exit("holder: renewing its lease renewed nothing")


def leave(transport: Transport, queue: str, argument: str) -> None:
    """Publish a message due now and (if the transport delays) one due in ``argument``
    seconds, claim the first under a lease that short, print the ids published, and exit
    without acking."""
    lease = float(argument)
    published = [Message(b"now", {"id": "due-now", "task": "tests.noop"})]
    transport.publish(queue, published[0])
    if transport.capabilities.delayed_delivery:
        published.append(Message(b"later", {"id": "due-later", "task": "tests.noop"}))
        transport.publish(queue, published[1], delay=lease)
    if len(transport.claim([queue], 1, lease=lease)) != 1:
        sys.exit(f"leaver: could not claim the message it had just published on {queue!r}")
    print(json.dumps([message.headers["id"] for message in published]), flush=True)
    transport.close()


def claim_one(transport: Transport, queue: str, argument: str) -> None:
    """Wait for a message to come due, claim and ack it, and print its id as a JSON list."""
    end = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < end:
        found = transport.claim([queue], 10)
        if found:
            transport.ack(found)
            print(json.dumps(ids(found)), flush=True)
            return
        transport.wait([queue], 1.0)
    sys.exit(f"claimer: nothing came due on {queue!r} within {CHILD_DEADLINE}s")


def publish(transport: Transport, queue: str, argument: str) -> None:
    """Connect, print ``ready``, and once told to go on, publish one message."""
    transport.connect()
    print("ready", flush=True)
    if not told_to_go_on(CHILD_DEADLINE):
        sys.exit(f"publisher: never told to go on within {CHILD_DEADLINE}s")
    time.sleep(PUBLISH_LAG)
    transport.publish(queue, Message(b"wake", {"id": "wake", "task": "tests.noop"}))
    transport.close()


def send_events(transport: Transport, queue: str, argument: str) -> None:
    """Connect, print ``ready``, and once told to go on, send ``argument`` events in batches
    of 1 to :data:`EVENT_BATCH_MOST`; each names the sender by ``queue`` as its ``hostname``
    and counts from 0 in its ``clock``."""
    total = int(argument)
    transport.connect()
    print("ready", flush=True)
    if not told_to_go_on(CHILD_DEADLINE):
        sys.exit(f"event sender: never told to go on within {CHILD_DEADLINE}s")
    clock = 0
    batch = 0
    while clock < total:
        size = min(1 + batch % EVENT_BATCH_MOST, total - clock)
        transport.send_events(
            [{"type": "task-succeeded", "hostname": queue, "clock": clock + number} for number in range(size)]
        )
        clock += size
        batch += 1
    print("sent", flush=True)
    transport.close()


ROLES: dict[str, Callable[[Transport, str, str], None]] = {
    "consume": consume,
    "hold": hold,
    "run": run,
    "leave": leave,
    "claim-one": claim_one,
    "publish": publish,
    "send-events": send_events,
}


def main(argv: list[str]) -> None:
    role, recipe, queue, *rest = argv
    ROLES[role](TransportRecipe.from_json(recipe).make(), queue, rest[0] if rest else "")


if __name__ == "__main__":
    main(sys.argv[1:])

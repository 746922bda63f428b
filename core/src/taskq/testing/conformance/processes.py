"""The multi-process transport conformance kit: what a broker shared between processes must do.

Workers are processes, so a transport that declares
``capabilities.shared_between_processes`` must keep its promises across them: competing
processes never get the same message and together get all of them, what a process
published or held outlives it, a killed holder's message comes back while a live one
keeps it, and a publish in one process wakes a wait in another.
:class:`MultiProcessTransportContract` is :class:`TransportContract` plus these tests:
a plugin subclasses it instead, with the same ``transport`` fixture::

    class TestSqliteTransport(MultiProcessTransportContract):
        @pytest.fixture
        def transport(self, url: str) -> Iterator[SqliteTransport]: ...

Each test starts real child processes, fresh interpreters running
:mod:`taskq.testing.conformance._child`, and each child makes its own transport from a
:class:`TransportRecipe`: the driver's import string, the URL and the options. The
``transport_recipe`` fixture reads them off ``transport``; override it when a child needs
other options, or when the options do not survive JSON. The driver must be importable in
a fresh interpreter, as it is in a worker. Children are killed at the end of each test.

The tests added here are skipped when the transport declares
``shared_between_processes=False``, and those of leases, delays and wake-ups when it
lacks the feature. Every wait has a deadline and every child a time limit.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from taskq.drivers.transport import Delivery, Transport
from taskq.plugins import import_string
from taskq.testing.conformance.transport import (
    PROMPT,
    TransportContract,
    claim_until,
    make_message,
    task_id,
    wait_until,
)

# The module each child process runs.
CHILD_MODULE = "taskq.testing.conformance._child"
# Seconds a child may take to print a line or to finish before the test gives up on it.
PROCESS_TIMEOUT = 60.0
# How many processes compete for one queue, and the most each claims at a time.
CLAIM_LIMITS = (1, 7, 25, 50)
# How many messages they compete for, published in batches of PUBLISH_BATCH.
COMPETING_MESSAGES = 2000
PUBLISH_BATCH = 200
# The lease, in seconds, under which a child holds a message: short enough that a
# killed holder's message comes back soon, long enough to renew on a busy machine.
HOLDER_LEASE = 1.0


@dataclass(frozen=True)
class TransportRecipe:
    """How a child process makes its own transport: ``driver(url, options)``.

    ``driver`` is an import string, ``"package.module:Class"``; ``options`` must survive
    JSON, since it travels to the child on its command line.
    """

    driver: str
    url: str
    options: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, transport: Transport) -> TransportRecipe:
        """The recipe for another instance like ``transport``: its class, URL and options."""
        kind = type(transport)
        return cls(f"{kind.__module__}:{kind.__qualname__}", transport.url, dict(transport.options))

    def to_json(self) -> str:
        try:
            return json.dumps({"driver": self.driver, "url": self.url, "options": dict(self.options)})
        except TypeError as exc:
            raise TypeError(
                f"the options of {self.driver} do not survive JSON ({exc}); override the "
                "'transport_recipe' fixture with a TransportRecipe whose options do"
            ) from exc

    @classmethod
    def from_json(cls, text: str) -> TransportRecipe:
        fields = json.loads(text)
        return cls(fields["driver"], fields["url"], fields["options"])

    def make(self) -> Transport:
        driver = import_string(self.driver)
        if not (isinstance(driver, type) and issubclass(driver, Transport)):
            raise TypeError(f"{self.driver} is {driver!r}, not a Transport subclass")
        return driver(self.url, self.options)


class ChildProcesses:
    """Starts the kit's child processes, and kills those still running at the end of a test."""

    def __init__(self, recipe: TransportRecipe) -> None:
        self.recipe = recipe
        self.started: list[subprocess.Popen[str]] = []

    def start(self, role: str, queue: str, argument: object = "") -> subprocess.Popen[str]:
        """Start a child playing ``role`` (see :mod:`taskq.testing.conformance._child`) on ``queue``."""
        process = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE, role, self.recipe.to_json(), queue, str(argument)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=PROCESS_TIMEOUT)  # reaps it and closes its pipes


def read_line(process: subprocess.Popen[str]) -> str:
    """The next line ``process`` prints, stripped; fail if none comes within :data:`PROCESS_TIMEOUT`."""
    assert process.stdout is not None
    # byte by byte from the pipe itself: no buffer may swallow what a later read wants
    descriptor = process.stdout.fileno()
    line = b""
    end = time.monotonic() + PROCESS_TIMEOUT
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([descriptor], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            pytest.fail(f"child process printed no line within {PROCESS_TIMEOUT}s")
        byte = os.read(descriptor, 1)
        if not byte:
            pytest.fail(f"child process ended without printing a line:\n{finish_with_error(process)}")
        line += byte
    return line.decode().strip()


def release(process: subprocess.Popen[str]) -> None:
    """Tell a child to go on, with a line on its stdin."""
    assert process.stdin is not None
    try:
        process.stdin.write("go\n")
        process.stdin.flush()
    except BrokenPipeError:
        pass  # it has ended already; finish() or read_line() reports why


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for ``process`` and return the rest of its output; fail with its stderr if it failed."""
    try:
        out, err = process.communicate(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"child process still running after {PROCESS_TIMEOUT}s:\n{err}")
    assert process.returncode == 0, f"child process failed with exit status {process.returncode}:\n{err}"
    return out


def finish_with_error(process: subprocess.Popen[str]) -> str:
    """The stderr of a child that ended (or is killed now), for a failure message."""
    if process.poll() is None:
        process.kill()
    return process.communicate(timeout=PROCESS_TIMEOUT)[1]


class MultiProcessTransportContract(TransportContract):
    """Every behaviour a transport promises, across processes too. Subclass it and provide ``transport``."""

    @pytest.fixture
    def transport_recipe(self, transport: Transport) -> TransportRecipe:
        """How a child process makes a transport on the same broker as ``transport``."""
        return TransportRecipe.of(transport)

    @pytest.fixture
    def children(self, transport: Transport, transport_recipe: TransportRecipe) -> Iterator[ChildProcesses]:
        self.require(transport, "shared_between_processes")
        children = ChildProcesses(transport_recipe)
        yield children
        children.close()

    # ---- Competing consumers --------------------------------------------------------

    def test_competing_processes_never_claim_the_same_message_and_together_claim_all(
        self, transport: Transport, children: ChildProcesses, queue: str
    ) -> None:
        consumers = [children.start("consume", queue, limit) for limit in CLAIM_LIMITS]
        for consumer in consumers:
            assert read_line(consumer) == "ready"
        sent = [make_message() for _ in range(COMPETING_MESSAGES)]
        for start in range(0, len(sent), PUBLISH_BATCH):  # published while they consume
            transport.publish_many((queue, message, 0.0) for message in sent[start : start + PUBLISH_BATCH])
        for consumer in consumers:
            release(consumer)  # all is published: stop once the queue is empty
        claimed: list[list[str]] = [json.loads(finish(consumer)) for consumer in consumers]
        everything = [claimed_id for ids in claimed for claimed_id in ids]
        assert len(everything) == len(set(everything)), "a message was handed to two processes"
        assert set(everything) == {message.headers["id"] for message in sent}
        assert sum(1 for ids in claimed if ids) >= 2, "one process claimed everything: they never competed"
        assert transport.depth(queue) == 0

    # ---- What outlives a process ----------------------------------------------------

    def test_messages_published_and_held_by_a_process_that_exited_are_claimed_by_another(
        self, transport: Transport, children: ChildProcesses, queue: str
    ) -> None:
        leaver = children.start("leave", queue, HOLDER_LEASE)
        published: list[str] = json.loads(finish(leaver))
        found: list[Delivery] = []

        def all_claimed() -> bool:
            found.extend(transport.claim([queue], 10))
            return len(found) >= len(published)

        wait_until(all_claimed, "the messages the exited process published and held are claimable")
        assert sorted(str(task_id(delivery)) for delivery in found) == sorted(published)

    # ---- Leases across processes ------------------------------------------------------

    def test_a_live_renewing_holder_keeps_its_message_past_several_leases(
        self, transport: Transport, children: ChildProcesses, queue: str
    ) -> None:
        self.require(transport, "leases")
        transport.publish(queue, make_message())
        holder = children.start("hold", queue, HOLDER_LEASE)
        assert read_line(holder).startswith("held ")
        held_until = time.monotonic() + HOLDER_LEASE * 3.5
        while time.monotonic() < held_until:
            assert transport.claim([queue], 10) == [], "a renewed lease was handed to a second claimer"
            transport.wait([queue], HOLDER_LEASE / 10)
        assert holder.poll() is None, f"the holder stopped:\n{finish_with_error(holder)}"
        assert transport.depth(queue) == 1

    @pytest.mark.parametrize("started", [False, True], ids=["prefetched", "started"])
    def test_a_message_whose_holder_was_killed_is_claimable_again_with_deliveries_incremented(
        self, transport: Transport, children: ChildProcesses, queue: str, started: bool
    ) -> None:
        """Killed while only holding it, the holder leaves the count alone on a transport
        that counts starts; killed while running it, it adds one on every transport."""
        sent = make_message()
        transport.publish(queue, sent)
        holder = children.start("run" if started else "hold", queue, HOLDER_LEASE)
        assert read_line(holder) == f"held {sent.headers['id']}"
        assert transport.claim([queue], 10) == []
        holder.kill()  # SIGKILL: no clean-up, as when the machine loses a worker
        holder.wait(PROCESS_TIMEOUT)
        [again] = claim_until(transport, queue, "the killed holder's message is claimable again")
        assert task_id(again) == sent.headers["id"]
        assert again.message.body == sent.body
        counted = started or not transport.capabilities.counts_starts
        assert again.deliveries == (2 if counted else 1)

    # ---- Delays and wake-ups across processes ---------------------------------------

    def test_a_delayed_message_is_claimed_by_another_process_once_due(
        self, transport: Transport, children: ChildProcesses, queue: str
    ) -> None:
        self.require(transport, "delayed_delivery")
        sent = make_message()
        transport.publish(queue, sent, delay=0.5)
        assert transport.depth(queue) == 1
        claimer = children.start("claim-one", queue)
        assert json.loads(finish(claimer)) == [sent.headers["id"]]
        assert transport.depth(queue) == 0

    def test_wait_returns_soon_after_another_process_publishes(
        self, transport: Transport, children: ChildProcesses, queue: str
    ) -> None:
        self.require(transport, "wakeup")
        transport.wait([queue], 0.01)  # let the waiter set itself up first, if it must
        publisher = children.start("publish", queue)
        assert read_line(publisher) == "ready"
        release(publisher)
        started = time.monotonic()
        transport.wait([queue], timeout=PROCESS_TIMEOUT)
        assert time.monotonic() - started < PROMPT
        finish(publisher)
        assert len(transport.claim([queue], 10)) == 1


__all__ = ["ChildProcesses", "MultiProcessTransportContract", "TransportRecipe", "finish", "read_line"]

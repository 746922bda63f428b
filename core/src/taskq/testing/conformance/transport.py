"""The transport conformance kit: one test per behaviour of :class:`taskq.drivers.transport.Transport`.

Subclass :class:`TransportContract` in a plugin's tests and provide a ``transport``
fixture (a connected instance). For a second, independent consumer the kit makes a new
instance on the same URL and options (``type(transport)(transport.url,
transport.options)``; override the ``other`` fixture if yours needs more), and it calls
:meth:`Transport.clone` for a twin acting for the same lease owner. It closes every
instance it makes. The ``queue`` fixture gives every test its own
queue name; override it when the broker needs names of a particular shape. A transport
that several processes share subclasses
:class:`~taskq.testing.conformance.processes.MultiProcessTransportContract` instead: this
suite plus tests across real child processes.

Tests for an optional feature (delays, leases, dead letters, wake-up) are skipped only
when the transport's :attr:`Transport.capabilities` say it does not have the feature.
Timing is checked with deadlines and generous bounds, never with bare sleeps: a test
waits for a condition, and fails only when the condition has not come after a long
while.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from taskq.drivers.transport import Delivery, EventReader, Letter, MailboxReader, Message, Transport

# A short lease, in seconds, for the tests where a lease must lapse.
SHORT_LEASE = 0.3
# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 10.0
# Upper bound, in seconds, for a wait() that should return promptly; far above the
# expected few milliseconds, so that a busy CI machine does not fail the test.
PROMPT = 5.0
# Pause between two checks of a condition, in seconds.
POLL = 0.02


def make_message(name: str = "tests.add", **headers: object) -> Message:
    """A message with every field set to something a broker could mangle."""
    task_id = uuid.uuid4().hex
    return Message(
        body=b'[[2, 2], {}, {"callbacks": null}]\x00\xff binary tail',
        headers={
            "lang": "py",
            "task": name,
            "id": task_id,
            "root_id": task_id,
            "parent_id": None,
            "retries": 0,
            "timelimit": [None, 30],
            "argsrepr": "(2, 2)",
            "nested": {"unicode": "gr\u00fc\u00df \u2713", "numbers": [1, 2.5, -3]},
            **headers,
        },
        content_type="application/x-taskq-test",
        content_encoding="binary",
        properties={"correlation_id": task_id, "reply_to": "replies", "delivery_mode": 2},
    )


def wait_until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Check ``condition`` until it holds; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what}: still not true after {deadline}s")
        time.sleep(POLL)


def claim_until(transport: Transport, queue: str, what: str, **kwargs: float) -> list[Delivery]:
    """Claim from ``queue`` until something comes; fail after :data:`DEADLINE` seconds."""
    found: list[Delivery] = []

    def claimed() -> bool:
        found.extend(transport.claim([queue], 10, **kwargs))
        return bool(found)

    wait_until(claimed, what)
    return found


def claim_count(transport: Transport, queue: str, count: int, what: str) -> list[Delivery]:
    """Claim from ``queue`` until ``count`` messages came; fail after :data:`DEADLINE` seconds."""
    found: list[Delivery] = []

    def claimed() -> bool:
        found.extend(transport.claim([queue], count - len(found)))
        return len(found) >= count

    wait_until(claimed, what)
    return found


def task_id(delivery: Delivery) -> object:
    return delivery.message.headers["id"]


class TransportContract:
    """Every behaviour a transport promises. Subclass it and provide ``transport``."""

    @pytest.fixture
    def transport(self) -> Transport:
        raise NotImplementedError("provide a 'transport' fixture that returns a connected Transport")

    @pytest.fixture
    def queue(self) -> str:
        """A queue name no other test uses."""
        return f"taskq-test-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def other(self, transport: Transport) -> Iterator[Transport]:
        """A second, independent instance on the same broker: another consumer."""
        second = type(transport)(transport.url, transport.options)
        yield second
        second.close()

    @pytest.fixture
    def twin(self, transport: Transport) -> Iterator[Transport]:
        """A clone of ``transport``: another connection for the same lease owner."""
        clone = transport.clone()
        yield clone
        clone.close()

    # ---- Skips, only for what the transport says it does not do ---------------------

    @staticmethod
    def require(transport: Transport, feature: str) -> None:
        if not getattr(transport.capabilities, feature):
            pytest.skip(f"{type(transport).__name__} declares {feature}=False")

    # ---- Publish and claim ------------------------------------------------------------

    def test_published_message_is_claimed_intact(self, transport: Transport, queue: str) -> None:
        sent = make_message()
        transport.publish(queue, sent)
        [delivery] = transport.claim([queue], 10)
        got = delivery.message
        assert got.body == sent.body
        assert got.headers == sent.headers
        assert got.content_type == sent.content_type
        assert got.content_encoding == sent.content_encoding
        assert got.properties == sent.properties
        assert delivery.queue == queue
        assert delivery.deliveries == 1

    def test_message_with_empty_headers_and_properties_is_claimed_intact(
        self, transport: Transport, queue: str
    ) -> None:
        transport.publish(queue, Message(body=b"", headers={}))
        [delivery] = transport.claim([queue], 10)
        assert delivery.message == Message(body=b"", headers={})

    def test_claim_returns_at_most_limit_messages(self, transport: Transport, queue: str) -> None:
        for _ in range(5):
            transport.publish(queue, make_message())
        assert len(transport.claim([queue], 3)) == 3
        assert len(transport.claim([queue], 3)) == 2
        assert transport.claim([queue], 3) == []

    def test_claim_on_an_empty_queue_returns_nothing_without_blocking(self, transport: Transport, queue: str) -> None:
        started = time.monotonic()
        assert transport.claim([queue], 10) == []
        assert time.monotonic() - started < PROMPT

    def test_messages_are_claimed_first_in_first_out(self, transport: Transport, queue: str) -> None:
        sent = [make_message() for _ in range(6)]
        for message in sent:
            transport.publish(queue, message)
        first = transport.claim([queue], 2)
        rest = transport.claim([queue], 10)
        assert [task_id(d) for d in first + rest] == [m.headers["id"] for m in sent]

    def test_messages_are_claimed_in_order_of_due_time(self, transport: Transport, queue: str) -> None:
        self.require(transport, "delayed_delivery")
        late, early, now = make_message(), make_message(), make_message()
        transport.publish(queue, late, delay=0.6)
        transport.publish(queue, early, delay=0.3)
        transport.publish(queue, now)
        assert [task_id(d) for d in transport.claim([queue], 10)] == [now.headers["id"]]
        order: list[object] = []

        def both_claimed() -> bool:
            order.extend(task_id(d) for d in transport.claim([queue], 10))
            return len(order) >= 2

        wait_until(both_claimed, "the two delayed messages are claimable")
        assert order == [early.headers["id"], late.headers["id"]]

    def test_claim_serves_several_queues(self, transport: Transport, queue: str) -> None:
        second = queue + "-second"
        transport.publish(queue, make_message())
        transport.publish(second, make_message())
        claimed = transport.claim([queue, second], 10)
        assert sorted(d.queue for d in claimed) == sorted([queue, second])
        transport.purge(second)

    def test_queues_are_isolated(self, transport: Transport, queue: str) -> None:
        second = queue + "-second"
        sent = make_message()
        transport.publish(second, sent)
        assert transport.claim([queue], 10) == []
        assert transport.depth(queue) == 0
        assert transport.depth(second) == 1
        [delivery] = transport.claim([second], 10)
        assert task_id(delivery) == sent.headers["id"]
        transport.ack([delivery])

    def test_publish_many_enqueues_every_message(self, transport: Transport, queue: str) -> None:
        second = queue + "-second"
        sent = [make_message() for _ in range(3)]
        transport.publish_many([(queue, sent[0], 0.0), (queue, sent[1], 0.0), (second, sent[2], 0.0)])
        assert [task_id(d) for d in transport.claim([queue], 10)] == [m.headers["id"] for m in sent[:2]]
        assert [task_id(d) for d in transport.claim([second], 10)] == [sent[2].headers["id"]]

    def test_publish_many_honours_each_delay(self, transport: Transport, queue: str) -> None:
        self.require(transport, "delayed_delivery")
        held, ready = make_message(), make_message()
        transport.publish_many([(queue, held, 60.0), (queue, ready, 0.0)])
        assert [task_id(d) for d in transport.claim([queue], 10)] == [ready.headers["id"]]
        assert transport.depth(queue) == 2

    # ---- Delays -----------------------------------------------------------------------

    def test_delayed_message_is_not_claimable_before_due_and_is_after(self, transport: Transport, queue: str) -> None:
        self.require(transport, "delayed_delivery")
        delay = 0.5
        published = time.monotonic()
        transport.publish(queue, make_message(), delay=delay)
        early = transport.claim([queue], 10)
        if time.monotonic() - published < delay:  # only meaningful if we really were early
            assert early == []
        assert len(early or claim_until(transport, queue, "the delayed message is claimable")) == 1
        assert time.monotonic() - published >= delay - 0.05  # a little slack for clock grain

    def test_message_delayed_far_ahead_stays_put(self, transport: Transport, queue: str) -> None:
        self.require(transport, "delayed_delivery")
        transport.publish(queue, make_message(), delay=3600)
        assert transport.claim([queue], 10) == []
        assert transport.depth(queue) == 1

    # ---- Leases -----------------------------------------------------------------------

    def test_claimed_message_is_not_handed_to_a_second_claimer_while_leased(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "leases")
        transport.publish(queue, make_message())
        assert len(transport.claim([queue], 10)) == 1
        assert other.claim([queue], 10) == []
        assert transport.claim([queue], 10) == []

    def test_renewed_lease_keeps_the_message_held_past_its_original_lease(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "leases")
        transport.publish(queue, make_message())
        deliveries = transport.claim([queue], 10, lease=SHORT_LEASE * 2)
        held_until = time.monotonic() + SHORT_LEASE * 8  # four lease periods
        while time.monotonic() < held_until:
            assert transport.renew(deliveries, lease=SHORT_LEASE * 2) == 1
            assert other.claim([queue], 10) == []
            time.sleep(SHORT_LEASE / 3)

    def test_renew_extends_only_leases_this_instance_holds(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "leases")
        transport.publish(queue, make_message())
        deliveries = transport.claim([queue], 10)
        assert other.renew(deliveries) == 0
        assert transport.renew(deliveries) == 1

    def test_expired_lease_makes_the_message_claimable_again_with_deliveries_incremented(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "leases")
        sent = make_message()
        transport.publish(queue, sent)
        [first] = transport.claim([queue], 10, lease=SHORT_LEASE)
        [again] = claim_until(other, queue, "the message whose lease lapsed is claimable again")
        assert task_id(again) == sent.headers["id"]
        assert again.message.body == sent.body
        # Claimed, never started: counted only where the transport counts hand-outs.
        counted = 0 if transport.capabilities.counts_starts else 1
        assert again.deliveries == first.deliveries + counted

    def test_a_started_message_whose_lease_lapsed_counts_one_more_delivery(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "leases")
        transport.publish(queue, make_message())
        [first] = transport.claim([queue], 10, lease=SHORT_LEASE)
        transport.started([first])
        [again] = claim_until(other, queue, "the message whose lease lapsed is claimable again")
        assert again.deliveries == first.deliveries + 1 == 2

    # ---- Counting starts (poison messages) -----------------------------------------

    def test_a_message_given_back_unstarted_keeps_its_count(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "counts_starts")
        transport.publish(queue, make_message())
        for _ in range(3):
            transport.requeue(claim_until(transport, queue, "the message is claimable"))
        [again] = claim_until(other, queue, "the requeued message is claimable")
        assert again.deliveries == 1

    def test_each_start_counts_once_and_a_requeue_keeps_the_count(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "counts_starts")
        for _ in range(3):
            transport.publish(queue, make_message())
        for expected in (1, 2, 3):
            batch = claim_count(transport, queue, 3, "the batch is claimable")
            assert [d.deliveries for d in batch] == [expected] * 3
            transport.started(batch[:2])
            transport.started([batch[2]])
            transport.requeue(batch)
        transport.started([])
        assert [d.deliveries for d in claim_count(other, queue, 3, "the batch is claimable")] == [4] * 3

    def test_started_counts_only_what_the_caller_holds(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "counts_starts")
        transport.publish(queue, make_message())
        deliveries = transport.claim([queue], 10)
        other.started(deliveries)  # another owner: not its message
        transport.requeue(deliveries)
        [again] = claim_until(transport, queue, "the requeued message is claimable")
        assert again.deliveries == 1

    def test_a_started_message_acked_and_published_again_starts_from_one(
        self, transport: Transport, queue: str
    ) -> None:
        sent = make_message()
        transport.publish(queue, sent)
        deliveries = transport.claim([queue], 10)
        transport.started(deliveries)
        transport.ack(deliveries)
        transport.publish(queue, sent)  # the same message again (a retry, a copy given back)
        [again] = claim_until(transport, queue, "the message published again is claimable")
        assert again.deliveries == 1

    def test_renew_after_another_claimer_took_the_message_renews_nothing(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "leases")
        transport.publish(queue, make_message())
        deliveries = transport.claim([queue], 10, lease=SHORT_LEASE)
        claim_until(other, queue, "the message whose lease lapsed is claimable again")
        assert transport.renew(deliveries) == 0

    # ---- Ack, requeue, dead letters -----------------------------------------------

    def test_acked_message_is_gone_for_good(self, transport: Transport, queue: str) -> None:
        transport.publish(queue, make_message())
        deliveries = transport.claim([queue], 10, lease=SHORT_LEASE)
        transport.ack(deliveries)
        assert transport.depth(queue) == 0
        after_lease = time.monotonic() + SHORT_LEASE * 2
        while time.monotonic() < after_lease:  # not even once its lease would have lapsed
            assert transport.claim([queue], 10) == []
            time.sleep(POLL)

    def test_ack_removes_a_whole_batch(self, transport: Transport, queue: str) -> None:
        for _ in range(5):
            transport.publish(queue, make_message())
        deliveries = transport.claim([queue], 10)
        transport.ack(deliveries[:1])
        transport.ack(deliveries[1:])
        assert transport.depth(queue) == 0

    def test_ack_of_a_message_already_acked_is_not_an_error(self, transport: Transport, queue: str) -> None:
        transport.publish(queue, make_message())
        deliveries = transport.claim([queue], 10)
        transport.ack(deliveries)
        transport.ack(deliveries)
        transport.ack([])
        assert transport.depth(queue) == 0

    def test_requeued_message_is_claimable_again(self, transport: Transport, other: Transport, queue: str) -> None:
        sent = make_message()
        transport.publish(queue, sent)
        transport.requeue(transport.claim([queue], 10))
        [again] = claim_until(other, queue, "the requeued message is claimable")
        assert task_id(again) == sent.headers["id"]
        assert again.deliveries == (1 if transport.capabilities.counts_starts else 2)

    def test_requeue_with_delay_holds_the_message_until_due(self, transport: Transport, queue: str) -> None:
        self.require(transport, "delayed_delivery")
        transport.publish(queue, make_message())
        delay = 0.4
        requeued = time.monotonic()
        transport.requeue(transport.claim([queue], 10), delay=delay)
        early = transport.claim([queue], 10)
        if time.monotonic() - requeued < delay:
            assert early == []
        early or claim_until(transport, queue, "the message requeued with a delay is claimable")
        assert time.monotonic() - requeued >= delay - 0.05

    def test_dead_lettered_message_leaves_the_queue_and_is_kept_with_its_reason(
        self, transport: Transport, queue: str
    ) -> None:
        self.require(transport, "dead_letter")
        sent = make_message()
        transport.publish(queue, sent)
        [delivery] = transport.claim([queue], 10, lease=SHORT_LEASE)
        before = time.time()
        transport.dead_letter(delivery, "unknown task 'tests.add'")
        assert transport.depth(queue) == 0
        [dead] = transport.dead_letters(queue)
        assert dead.queue == queue
        assert dead.reason == "unknown task 'tests.add'"
        assert dead.message.body == sent.body
        assert dead.message.headers == sent.headers
        assert dead.message.properties == sent.properties
        assert before - 5 <= dead.timestamp <= time.time() + 5
        after_lease = time.monotonic() + SHORT_LEASE * 2
        while time.monotonic() < after_lease:  # gone from the queue, not merely leased
            assert transport.claim([queue], 10) == []
            time.sleep(POLL)

    def test_dead_letters_lists_the_most_recent_first(self, transport: Transport, queue: str) -> None:
        self.require(transport, "dead_letter")
        for _ in range(3):
            transport.publish(queue, make_message())
        for number, delivery in enumerate(transport.claim([queue], 10)):
            transport.dead_letter(delivery, f"reason {number}")
        assert [d.reason for d in transport.dead_letters(queue, limit=2)] == ["reason 2", "reason 1"]

    # ---- Administration -----------------------------------------------------------

    def test_depth_counts_waiting_delayed_and_claimed_messages(self, transport: Transport, queue: str) -> None:
        assert transport.depth(queue) == 0
        transport.publish(queue, make_message())
        transport.publish(queue, make_message())
        if transport.capabilities.delayed_delivery:
            transport.publish(queue, make_message(), delay=3600)
        expected = 3 if transport.capabilities.delayed_delivery else 2
        assert transport.depth(queue) == expected
        transport.claim([queue], 1)
        assert transport.depth(queue) == expected

    def test_purge_deletes_waiting_messages_and_says_how_many(self, transport: Transport, queue: str) -> None:
        second = queue + "-second"
        for _ in range(3):
            transport.publish(queue, make_message())
        transport.publish(second, make_message())
        assert transport.purge(queue) == 3
        assert transport.depth(queue) == 0
        assert transport.claim([queue], 10) == []
        assert transport.depth(second) == 1
        assert transport.purge(second) == 1
        assert transport.purge(queue) == 0

    # ---- Waiting ----------------------------------------------------------------------

    def test_wait_returns_soon_after_a_publish_from_another_thread(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "wakeup")
        transport.wait([queue], 0.01)  # let the waiter set itself up first, if it must
        publisher = threading.Timer(0.2, lambda: other.publish(queue, make_message()))
        started = time.monotonic()
        publisher.start()
        try:
            transport.wait([queue], timeout=PROMPT * 2)
        finally:
            publisher.join()
        assert time.monotonic() - started < PROMPT
        assert len(transport.claim([queue], 10)) == 1

    def test_wait_returns_at_once_when_a_message_is_already_due(self, transport: Transport, queue: str) -> None:
        transport.publish(queue, make_message())
        started = time.monotonic()
        transport.wait([queue], timeout=PROMPT * 2)
        assert time.monotonic() - started < PROMPT

    def test_wait_returns_when_a_delayed_message_becomes_due(self, transport: Transport, queue: str) -> None:
        self.require(transport, "wakeup")
        self.require(transport, "delayed_delivery")
        transport.publish(queue, make_message(), delay=0.3)
        started = time.monotonic()
        claimed: list[Delivery] = []
        while not claimed and time.monotonic() - started < PROMPT:
            transport.wait([queue], timeout=PROMPT * 2)
            claimed = transport.claim([queue], 10)
        assert len(claimed) == 1
        assert time.monotonic() - started < PROMPT

    def test_wait_honours_its_timeout(self, transport: Transport, queue: str) -> None:
        started = time.monotonic()
        transport.wait([queue], timeout=0.2)
        assert time.monotonic() - started < PROMPT

    def test_interrupt_ends_a_wait_from_another_thread(self, transport: Transport, queue: str) -> None:
        interrupter = threading.Timer(0.2, transport.interrupt)
        started = time.monotonic()
        interrupter.start()
        try:
            transport.wait([queue], timeout=PROMPT * 6)
        finally:
            interrupter.join()
        assert time.monotonic() - started < PROMPT

    # ---- Life cycle -----------------------------------------------------------------

    def test_a_new_instance_is_another_consumer_on_the_same_broker(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        sent = make_message()
        other.publish(queue, sent)
        [delivery] = transport.claim([queue], 10)
        assert task_id(delivery) == sent.headers["id"]
        assert other.owner != transport.owner

    def test_clone_renews_and_acks_what_the_original_claimed(
        self, transport: Transport, twin: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "leases")
        transport.publish(queue, make_message())
        deliveries = transport.claim([queue], 10, lease=SHORT_LEASE * 2)
        assert twin.owner == transport.owner
        held_until = time.monotonic() + SHORT_LEASE * 4
        while time.monotonic() < held_until:
            assert twin.renew(deliveries, lease=SHORT_LEASE * 2) == 1
            assert other.claim([queue], 10) == []
            time.sleep(SHORT_LEASE / 3)
        twin.ack(deliveries)
        assert transport.depth(queue) == 0

    # ---- Events ------------------------------------------------------------------------

    @staticmethod
    def make_events(count: int, kind: str = "task-succeeded") -> list[dict[str, object]]:
        """Celery-shaped events, each with a unique ``uuid`` and values a broker could mangle."""
        return [
            {
                "type": kind,
                "uuid": uuid.uuid4().hex,
                "hostname": "w1@host",
                "timestamp": time.time(),
                "clock": number,
                "result": "'gr\u00fc\u00df \u2713'",
                "runtime": 0.25,
                "nested": {"list": [1, None, True]},
            }
            for number in range(count)
        ]

    @staticmethod
    def read_until(reader: EventReader, count: int) -> list[dict[str, object]]:
        """Read until ``count`` events came; fail after :data:`DEADLINE` seconds."""
        found: list[dict[str, object]] = []
        end = time.monotonic() + DEADLINE
        while len(found) < count and time.monotonic() < end:
            found.extend(reader.read(0.2))
        return found

    def test_events_reach_a_reader_intact_and_in_order(self, transport: Transport, other: Transport) -> None:
        self.require(transport, "events")
        reader = transport.event_reader()
        try:
            sent = self.make_events(5)
            other.send_events(sent[:2])  # from another connection, as another process would
            other.send_events(sent[2:])
            assert self.read_until(reader, 5) == sent
        finally:
            reader.close()

    def test_every_reader_gets_every_event(self, transport: Transport, other: Transport) -> None:
        self.require(transport, "events")
        readers = [transport.event_reader(), other.event_reader()]
        try:
            sent = self.make_events(3, "worker-heartbeat")
            transport.send_events(sent)
            for reader in readers:
                assert [e["uuid"] for e in self.read_until(reader, 3)] == [e["uuid"] for e in sent]
        finally:
            for reader in readers:
                reader.close()

    def test_a_reader_gets_only_what_is_sent_after_it_is_made(self, transport: Transport) -> None:
        self.require(transport, "events")
        transport.send_events(self.make_events(2))
        reader = transport.event_reader()
        try:
            later = self.make_events(1)
            transport.send_events(later)
            found = self.read_until(reader, 1)
            assert [e["uuid"] for e in found] == [later[0]["uuid"]]
            assert reader.read(0.3) == []
        finally:
            reader.close()

    def test_a_reader_of_some_groups_gets_only_their_events(self, transport: Transport, other: Transport) -> None:
        self.require(transport, "events")
        workers_only = transport.event_reader(groups={"worker"})
        everything = transport.event_reader()
        try:
            sent = [*self.make_events(2, "task-succeeded"), *self.make_events(2, "worker-heartbeat")]
            sent.append({**self.make_events(1, "worker-offline")[0]})
            other.send_events(sent)
            got = self.read_until(workers_only, 3)
            assert [e["uuid"] for e in got] == [e["uuid"] for e in sent[2:]]
            assert len(self.read_until(everything, 5)) == 5
            assert workers_only.read(0.3) == []
        finally:
            workers_only.close()
            everything.close()

    def test_reading_with_nothing_sent_waits_about_its_timeout(self, transport: Transport) -> None:
        self.require(transport, "events")
        reader = transport.event_reader()
        try:
            started = time.monotonic()
            assert reader.read(0.3) == []
            assert 0.2 <= time.monotonic() - started < PROMPT
        finally:
            reader.close()

    def test_a_transport_without_events_says_so(self, transport: Transport) -> None:
        if transport.capabilities.events:
            pytest.skip(f"{type(transport).__name__} carries events")
        with pytest.raises(NotImplementedError, match="cannot carry events"):
            transport.send_events(self.make_events(1))
        with pytest.raises(NotImplementedError, match="cannot carry events"):
            transport.event_reader()

    # ---- Remote control: the mailbox -------------------------------------------------

    @staticmethod
    def make_request(method: str = "ping", reply_to: dict[str, str] | None = None) -> dict[str, object]:
        """A request in Celery's shape, with a unique ticket and values a broker could mangle."""
        request: dict[str, object] = {
            "method": method,
            "arguments": {"text": "gr\u00fc\u00df \u2713", "nested": {"list": [1, None, True]}},
            "destination": None,
            "pattern": None,
            "matcher": None,
        }
        if reply_to is not None:
            request.update(ticket=uuid.uuid4().hex, reply_to=reply_to)
        return request

    @staticmethod
    def read_letters(reader: MailboxReader, count: int) -> list[Letter]:
        """Read until ``count`` letters came; fail after :data:`DEADLINE` seconds."""
        found: list[Letter] = []
        end = time.monotonic() + DEADLINE
        while len(found) < count and time.monotonic() < end:
            found.extend(reader.read(0.2))
        return found

    def test_a_request_reaches_every_worker_listening_intact(self, transport: Transport, other: Transport) -> None:
        self.require(transport, "control")
        node = uuid.uuid4().hex[:8]
        readers = [transport.mailbox().listen(f"w1-{node}@host"), other.mailbox().listen(f"w2-{node}@host")]
        try:
            sent = [self.make_request("ping"), self.make_request("stats")]
            headers = {"clock": 7, "expires": time.time() + 60}
            for request in sent:
                other.mailbox().broadcast(request, headers)
            for reader in readers:
                letters = self.read_letters(reader, 2)
                assert [letter.body for letter in letters] == sent
                assert letters[0].headers["clock"] == 7
                assert letters[0].headers["expires"] == pytest.approx(headers["expires"])
        finally:
            for reader in readers:
                reader.close()

    def test_a_worker_gets_only_requests_sent_after_it_listens(self, transport: Transport) -> None:
        self.require(transport, "control")
        mailbox = transport.mailbox()
        mailbox.broadcast(self.make_request("early"), {})
        reader = mailbox.listen(f"w-{uuid.uuid4().hex[:8]}@host")
        try:
            mailbox.broadcast(self.make_request("late"), {})
            letters = self.read_letters(reader, 1)
            assert [letter.body["method"] for letter in letters] == ["late"]  # type: ignore[index]
            assert reader.read(0.3) == []
        finally:
            reader.close()

    def test_a_reply_reaches_only_the_client_it_names(self, transport: Transport, other: Transport) -> None:
        self.require(transport, "control")
        mine, theirs = transport.mailbox().collect(), other.mailbox().collect()
        try:
            assert mine.reply_to is not None and theirs.reply_to is not None
            assert mine.reply_to["exchange"] == "reply.celery.pidbox"
            assert mine.reply_to != theirs.reply_to
            body = {"w1@host": {"ok": "pong", "text": "gr\u00fc\u00df \u2713"}}
            other.mailbox().reply(mine.reply_to, body, {"ticket": "t-1", "clock": 3})
            [letter] = self.read_letters(mine, 1)
            assert letter.body == body
            assert letter.headers["ticket"] == "t-1"
            assert theirs.read(0.3) == []
        finally:
            mine.close()
            theirs.close()

    def test_a_request_and_its_replies_go_round(self, transport: Transport, other: Transport) -> None:
        self.require(transport, "control")
        client = transport.mailbox().collect()
        worker = other.mailbox().listen(f"w-{uuid.uuid4().hex[:8]}@host")
        try:
            assert client.reply_to is not None
            request = self.make_request("ping", client.reply_to)
            transport.mailbox().broadcast(request, {})
            [letter] = self.read_letters(worker, 1)
            assert isinstance(letter.body, dict)
            other.mailbox().reply(
                letter.body["reply_to"], {"w@host": {"ok": "pong"}}, {"ticket": letter.body["ticket"]}
            )
            [answer] = self.read_letters(client, 1)
            assert answer.body == {"w@host": {"ok": "pong"}}
            assert answer.headers["ticket"] == request["ticket"]
        finally:
            client.close()
            worker.close()

    def test_namespaces_do_not_mix(self, transport: Transport) -> None:
        self.require(transport, "control")
        reader = transport.mailbox("celery").listen(f"w-{uuid.uuid4().hex[:8]}@host")
        try:
            transport.mailbox("elsewhere").broadcast(self.make_request("other"), {})
            transport.mailbox("celery").broadcast(self.make_request("mine"), {})
            letters = self.read_letters(reader, 1)
            assert [letter.body["method"] for letter in letters] == ["mine"]  # type: ignore[index]
            assert reader.read(0.3) == []
        finally:
            reader.close()

    def test_reading_an_empty_mailbox_waits_about_its_timeout(self, transport: Transport) -> None:
        self.require(transport, "control")
        reader = transport.mailbox().collect()
        try:
            started = time.monotonic()
            assert reader.read(0.3) == []
            assert 0.2 <= time.monotonic() - started < PROMPT
        finally:
            reader.close()

    def test_a_transport_without_a_mailbox_says_so(self, transport: Transport) -> None:
        if transport.capabilities.control:
            pytest.skip(f"{type(transport).__name__} has a mailbox")
        with pytest.raises(NotImplementedError, match="no remote control mailbox"):
            transport.mailbox()

    # ---- Broadcast queues ------------------------------------------------------------

    @staticmethod
    def broadcasting(transport: Transport, queue: str, exchange: str) -> Transport:
        """A new instance on ``transport``'s broker to which ``queue`` is a broadcast queue of ``exchange``."""
        declared = {queue: (exchange, "")}
        sender = type(transport)(transport.url, {**transport.options, "broadcast_queues": declared.get})
        sender.connect()
        return sender

    @staticmethod
    def claim_all(transport: Transport, queue: str, count: int) -> list[Delivery]:
        """Claim from ``queue`` until ``count`` messages came; fail after :data:`DEADLINE` seconds."""
        found: list[Delivery] = []
        end = time.monotonic() + DEADLINE
        while len(found) < count and time.monotonic() < end:
            got = transport.claim([queue], count - len(found))
            found += got
            if not got:
                transport.wait([queue], 0.1)
        return found

    def test_a_broadcast_reaches_every_subscriber_once(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        self.require(transport, "broadcast")
        exchange = f"{queue}-fanout"
        mine, theirs = f"bcast.{queue}-1", f"bcast.{queue}-2"
        transport.subscribe_broadcast(exchange, "", mine)
        other.subscribe_broadcast(exchange, "", theirs)
        sender = self.broadcasting(transport, queue, exchange)
        try:
            sent = [make_message(id=f"b{i}") for i in range(3)]
            sender.publish(queue, sent[0])
            sender.publish_many([(queue, sent[1], 0.0), (queue, sent[2], 0.0)])
            for consumer, own in ((transport, mine), (other, theirs)):
                got = self.claim_all(consumer, own, 3)
                assert sorted(str(task_id(d)) for d in got) == ["b0", "b1", "b2"]
                assert {d.queue for d in got} == {own}
                consumer.ack(got)
                assert consumer.claim([own], 10) == []
            assert transport.depth(queue) == 0  # the broadcast queue itself holds nothing
        finally:
            sender.close()
            transport.unsubscribe_broadcast(mine)
            other.unsubscribe_broadcast(theirs)

    def test_a_broadcast_is_intact_and_only_for_its_exchange(self, transport: Transport, queue: str) -> None:
        self.require(transport, "broadcast")
        exchange = f"{queue}-fanout"
        mine, elsewhere = f"bcast.{queue}-1", f"bcast.{queue}-2"
        transport.subscribe_broadcast(exchange, "", mine)
        transport.subscribe_broadcast(f"{exchange}-other", "", elsewhere)
        sender = self.broadcasting(transport, queue, exchange)
        try:
            message = make_message(id="intact")
            sender.publish(queue, message)
            (delivery,) = self.claim_all(transport, mine, 1)
            assert delivery.message.body == message.body
            assert delivery.message.headers["id"] == "intact"
            assert delivery.message.headers["task"] == message.headers["task"]
            transport.ack([delivery])
            assert transport.claim([elsewhere], 10) == []
        finally:
            sender.close()
            transport.unsubscribe_broadcast(mine)
            transport.unsubscribe_broadcast(elsewhere)

    def test_an_ended_subscription_gets_nothing_more(self, transport: Transport, queue: str) -> None:
        self.require(transport, "broadcast")
        exchange = f"{queue}-fanout"
        mine, kept = f"bcast.{queue}-1", f"bcast.{queue}-2"
        transport.subscribe_broadcast(exchange, "", mine)
        transport.subscribe_broadcast(exchange, "", kept)
        sender = self.broadcasting(transport, queue, exchange)
        try:
            sender.publish(queue, make_message(id="before"))
            assert [task_id(d) for d in self.claim_all(transport, kept, 1)] == ["before"]
            transport.unsubscribe_broadcast(mine)  # and what it held goes with it
            sender.publish(queue, make_message(id="after"))
            assert [task_id(d) for d in self.claim_all(transport, kept, 1)] == ["after"]
            assert transport.claim([mine], 10) == []
            transport.unsubscribe_broadcast(mine)  # safe twice
        finally:
            sender.close()
            transport.unsubscribe_broadcast(kept)

    def test_a_subscription_not_renewed_lapses(self, transport: Transport, queue: str) -> None:
        self.require(transport, "broadcast")
        exchange = f"{queue}-fanout"
        lapsing, renewed = f"bcast.{queue}-1", f"bcast.{queue}-2"
        transport.subscribe_broadcast(exchange, "", lapsing, ttl=1.0)
        transport.subscribe_broadcast(exchange, "", renewed, ttl=1.0)
        sender = self.broadcasting(transport, queue, exchange)
        try:
            end = time.monotonic() + 2.5
            while time.monotonic() < end:  # renew one, for longer than the other's lifetime
                transport.subscribe_broadcast(exchange, "", renewed, ttl=1.0)
                transport.wait([renewed], 0.2)
            sender.publish(queue, make_message(id="late"))
            assert [task_id(d) for d in self.claim_all(transport, renewed, 1)] == ["late"]
            assert transport.claim([lapsing], 10) == []
        finally:
            sender.close()
            transport.unsubscribe_broadcast(lapsing)
            transport.unsubscribe_broadcast(renewed)

    def test_a_transport_without_broadcast_queues_says_so(self, transport: Transport, queue: str) -> None:
        if transport.capabilities.broadcast:
            pytest.skip(f"{type(transport).__name__} has broadcast queues")
        with pytest.raises(NotImplementedError, match="no broadcast queues"):
            transport.subscribe_broadcast(f"{queue}-fanout", "", f"bcast.{queue}")

    def test_close_is_safe_twice(self, transport: Transport) -> None:
        clone = transport.clone()
        clone.connect()
        clone.close()
        clone.close()


__all__ = ["TransportContract", "make_message"]

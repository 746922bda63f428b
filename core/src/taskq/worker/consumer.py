"""The consumer: claims messages, decides what each one needs, and hands tasks to the pool.

The loop, in the worker's main thread:

1. settle finished tasks (ack late, requeue or dead-letter what they asked for);
2. move ETA tasks that came due from the timer to the ready queue;
3. start ready tasks while the pool has room (acking first unless the task acks late, else
   recording the start in the broker, which counts starts for the poison-message check;
   a held message that started before and was never settled runs alone);
4. claim up to the prefetch window under a lease, and sort what came: undecodable,
   unknown or poison messages are dead-lettered, expired ones recorded as REVOKED, ETAs
   beyond the horizon go back to the broker, near ones wait in the timer (outside the
   window, up to :data:`ETA_ALLOWANCE` of them);
5. with nothing to do, block in the transport's ``wait`` (a wake-up, not a poll).

Between turns the loop makes the calls other parts of the worker asked for: periodic ones
(:meth:`Consumer.call_every`: the health step's beat, the autoscaler) and one-off ones from
other threads (:meth:`Consumer.call_soon`: stopping a task revoked with ``terminate``).
How each task ended is recorded by :mod:`taskq.worker.endings`; what then becomes of its
message is decided by :mod:`taskq.worker.acks`.

Everything claimed and not yet acknowledged is *held*: the lease keeper renews it from
its own thread, and shutdown gives it back to the broker.

The module stays whole past 700 lines: it is the loop above, and every method keeps the
loop's one state consistent (what is held, reserved, in the timer, running), in the
order the loop runs them; what is an idea of its own lives beside it (the settling of
messages in :mod:`~taskq.worker.acks`, endings, chores, rate limits, revocations,
broadcast queues).
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from taskq import _protocol as protocol
from taskq import states
from taskq.drivers.pool import JobNotStartedError
from taskq.drivers.support import envelope
from taskq.drivers.support.connections import mask_url
from taskq.errors import (
    BrokerUnavailableError,
    NotRegisteredError,
    TaskqError,
    TaskRevokedError,
    Terminated,
    WorkerLostError,
)
from taskq.worker import acks, endings
from taskq.worker import events as task_events
from taskq.worker.acks import Action
from taskq.worker.broadcast import BroadcastQueues
from taskq.worker.chores import Chores
from taskq.worker.ratelimit import RateLimits
from taskq.worker.request import Request
from taskq.worker.revocations import Revocations
from taskq.worker.trace import TraceOutcome, fail_following, trace_task, trace_task_async

if TYPE_CHECKING:
    from taskq.drivers.transport import Delivery, Transport
    from taskq.events import EventDispatcher
    from taskq.worker.autoscale import Autoscaler
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

# Longest sleep in wait() when idle, in seconds; a wake-up or a due ETA ends it sooner.
IDLE_WAIT = 5.0
# An ETA closer than this (seconds) counts as due now.
ETA_SLACK = 0.0005
# Tasks waiting in the timer for their ETA that the prefetch window leaves out, in messages.
# Celery raises its prefetch by one for each ETA task it holds, without bound; counting them
# all would let a few ETAs a minute away stop a worker with a backlog of tasks due now.
ETA_ALLOWANCE = 1000
# Pause after losing the broker: first and longest, in seconds (doubling in between).
RECONNECT_START = 0.5
RECONNECT_MAX = 15.0
#: What a transport raises when its broker is unreachable.
BROKER_ERRORS = (BrokerUnavailableError, ConnectionError, TimeoutError)
# Longest task id read from an undecodable message's headers, to record its failure under.
ID_MAX = 255


class Consumer:
    """Claims, sorts and dispatches messages; see the module docstring."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app = worker.app
        self.transport: Transport = self.app.new_transport()
        self.queues = list(worker.queues)
        self.pool = worker.pool
        self.inline = worker.pool.capabilities.runs_inline
        # On event-loop pools, ``async def`` tasks run through the coroutine tracer (see _target).
        self._runs_coroutines = worker.pool.capabilities.coroutines
        self._targets: dict[str, Callable[..., object]] = {}
        self.lease = worker.lease_seconds
        self.hostname = worker.hostname
        conf = self.app.conf
        self.max_deliveries = int(conf["task_max_deliveries"])  # type: ignore[call-overload]  # an int setting
        self.eta_horizon = float(conf["worker_eta_horizon"])  # type: ignore[arg-type]  # a float setting
        self.registry = self.app.serializers
        # A plugin checks each message before it is decoded (taskq-security's signatures).
        self._checks_messages = self.app.plugins.has_impl("taskq_message_received")
        self.held: dict[object, Delivery] = {}
        self.held_lock = threading.Lock()
        self.reserved: deque[Request] = deque()
        self.timer: list[tuple[float, int, Request]] = []
        self._sequence = itertools.count()
        self.completions: deque[tuple[Request, TraceOutcome | BaseException]] = deque()
        self._completed = threading.Event()
        # True while the loop blocks in the transport's wait (a finished task interrupts it).
        self._in_broker_wait = False
        # The loop's thread: a pool reporting from it (poll) needs no wake-up.
        self._loop_thread = 0
        self.running = 0
        # Of those, the ones whose message is still held (acks_late).
        self.running_unacked = 0
        self.should_stop = False
        self.processed = 0
        #: Turns of the loop the broker failed (each retry counts), and times it came back
        #: after failing (``inspect stats``; taskq-prometheus reads them).
        self.broker_errors = 0
        self.reconnects = 0
        #: Tasks ended, by name (``inspect stats``' ``total``).
        self.totals: Counter[str] = Counter()
        #: The autoscaler, once --autoscale or the ``autoscale`` command attached one.
        self.autoscaler: Autoscaler | None = None
        self._log_info = logger.isEnabledFor(logging.INFO)
        #: Requests running in the pool, by task id.
        self.active: dict[str, Request] = {}
        self.revocations = Revocations(worker.state_path)
        #: Where task events go (set by the events step when they are on; None: not sent).
        self.events: EventDispatcher | None = None
        self._rate_limits = RateLimits()
        self._chores = Chores()
        #: The broadcast queues consumed, each through a queue of the worker's own (subscribed
        #: from the loop: until then, ``queues`` leaves them out).
        self.broadcasts = BroadcastQueues(self)
        self.queues = self.broadcasts.split(self.queues)
        #: When the task running inline (solo) started, by the monotonic clock; else None.
        self.busy_since: float | None = None
        # Poison accounting (see _dispatch): on a transport that counts starts, a held
        # message that started before and was never settled may be what killed a worker;
        # it runs alone, so that a death while it runs is its own.
        self._counts_starts = self.transport.capabilities.counts_starts
        #: The suspect running alone, if any: nothing else starts until it ends.
        self._alone: Request | None = None

    def _running_in_window(self) -> int:
        """Running tasks that count against the prefetch window.

        As in Celery, the window bounds the messages held unacknowledged: a task acked
        early (when it started) has left it. With a multiplier of 0 every running task
        counts, so a busy worker takes nothing more than it can run.
        """
        if self.worker.prefetch_multiplier == 0:
            return self.running
        return self.running_unacked

    @property
    def prefetch(self) -> int:
        """How many messages this worker may hold: the window follows the pool's size."""
        return self.worker.prefetch_for(self.pool.concurrency)

    def call_every(self, interval: float, call: Callable[[], None]) -> None:
        """Have the loop call ``call`` between turns, at most every ``interval`` seconds (see
        :mod:`taskq.worker.chores`)."""
        self._chores.every(interval, call)

    def call_soon(self, call: Callable[[], None]) -> None:
        """Have the loop call ``call`` on its next turn, waking it; safe from any thread."""
        self._chores.soon(call)
        self._wake()

    # ---- The loop -----------------------------------------------------------------

    def run(self) -> None:
        """Consume until :meth:`stop`; give back whatever is held on the way out.

        A broker that goes away does not end the loop: the worker logs it, waits with a
        growing pause, and carries on once the transport reconnects (each transport
        reconnects on the call after a failure), so it never stays alive consuming
        nothing.
        """
        # True until the loop ends normally: an exception (a cold stop) skips the wait.
        interrupted = True
        failures = 0
        self._loop_thread = threading.get_ident()
        try:
            while not self.should_stop:
                try:
                    self._step()
                except BROKER_ERRORS as exc:
                    failures += 1
                    self.broker_errors += 1
                    self._on_broker_error(exc, failures)
                    continue
                if failures:
                    logger.warning("the broker at %s answers again; consuming", mask_url(self.transport.url))
                    failures = 0
                    self.reconnects += 1
            interrupted = False
        finally:
            try:
                if not interrupted and not self.worker.cold:
                    self._finish_running()
            finally:
                # Also when a cold stop (the second signal) interrupts the warm one's wait.
                if self.worker.cold:
                    self._give_back_unstarted()
                self._give_back()
                self.broadcasts.close()

    def _step(self) -> None:
        """One turn of the loop (see the module docstring)."""
        self._chores.run(time.monotonic())
        if self.completions:
            self._settle()
        if self.timer:
            self._release_due()
        if self.reserved:
            self._dispatch()
            if self.completions:
                return
            if self.reserved:
                if not self.should_stop:
                    # The pool is full: sleep until a task ends (spinning here would hold the
                    # GIL the pool's threads need to finish it, and burn a CPU).
                    self._wait_for_pool(self._until_next())
                return
        if self.should_stop:
            return
        room = self.prefetch - (len(self.reserved) + len(self.timer) + self._running_in_window())
        if self.timer:
            room += self._waiting_for_eta()
        if room > 0 and self.queues:
            claimed = self.transport.claim(self.queues, room, lease=self.lease)
            if claimed:
                for delivery in claimed:
                    self._on_delivery(delivery)
                return
            timeout = self._until_next()
            # A task that ends now must interrupt this wait; one that ended before the
            # flag was up is seen by the check under it.
            self.pool.release()
            self._in_broker_wait = True
            try:
                if not self.completions:
                    self.transport.wait(self.queues, timeout)
            finally:
                self._in_broker_wait = False
        else:
            # The window is full: wait for a task to finish, not for new messages; a task
            # in the timer (an ETA, or one over its rate limit) may come due first.
            self._wait_for_pool(self._until_next())

    def _waiting_for_eta(self) -> int:
        """The timer's tasks left out of the prefetch window: those waiting for their ETA, up
        to ``ETA_ALLOWANCE``.

        Only ETAs within ``worker_eta_horizon`` wait here (later ones go back to the broker),
        but a few of them must not fill the window and leave the tasks due now in the queue:
        RabbitMQ's delay queues hand ETA tasks over up to 1/64 of their delay early, and a
        Celery client's ETAs come at once. Tasks over their rate limit still count.
        """
        now = time.time()
        waiting = 0
        for _, _, request in self.timer:
            if request.eta is not None and request.eta > now:
                waiting += 1
                if waiting >= ETA_ALLOWANCE:
                    break
        return waiting

    def _until_next(self) -> float:
        """How long the loop may wait: until its next periodic call or the timer's first task."""
        timeout = self._chores.time_left(time.monotonic(), IDLE_WAIT)
        if self.timer:
            timeout = max(0.0, min(timeout, self.timer[0][0] - time.time()))
        return timeout

    def _wait_for_pool(self, timeout: float) -> None:
        """Until a task ends (or ``timeout``): in the pool's :meth:`~taskq.drivers.pool.Pool.poll`
        where it can report from this thread, else on the event its callbacks set."""
        if self.completions:
            return
        if not self.pool.poll(timeout):
            self._completed.wait(timeout)
            self._completed.clear()

    def _on_broker_error(self, exc: BaseException, failures: int) -> None:
        delay = min(RECONNECT_MAX, RECONNECT_START * 2 ** (failures - 1))
        logger.warning("lost the broker at %s (%s); retrying in %.1fs", mask_url(self.transport.url), exc, delay)
        # Interruptible: a stop during the pause ends it at once. The pool reports from
        # its own threads meanwhile.
        self.pool.release()
        self._completed.wait(delay)
        self._completed.clear()

    def stop(self) -> None:
        """Stop after the current step; safe from any thread or a signal handler."""
        self.should_stop = True
        self._wake()

    def wake(self) -> None:
        """End whatever wait the loop is in, so that it looks again (at its queues, its pool)."""
        self._wake()

    def _wake(self) -> None:
        """End whatever wait the loop is in: for the pool, for the broker, or a pause."""
        self._completed.set()
        self.pool.interrupt()
        self.transport.interrupt()

    # ---- Incoming messages ----------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        with self.held_lock:
            self.held[delivery.tag] = delivery
        if self._checks_messages and (refusal := self.app.plugins.message_received(self.app, delivery.message)):
            self._reject(delivery, None, refusal)  # no result under an id nobody vouched for
            return
        try:
            # the one guarded place: past it, every field the worker reads has been checked
            message = protocol.decode(self.registry, delivery.message)
        except Exception as exc:  # MessageDecodeError, by decode's contract; anything else is a bug there
            reason = str(exc) if isinstance(exc, TaskqError) else f"{type(exc).__name__}: {exc}"
            self._reject(delivery, _header_id(delivery), f"cannot decode the message: {reason}")
            return
        if delivery.deliveries > self.max_deliveries:
            self._reject(
                delivery,
                message.id,
                f"task {message.name}[{message.id}] was handed out {delivery.deliveries} times without "
                f"being acknowledged (task_max_deliveries={self.max_deliveries}): it may be killing its "
                f"worker",
                following=message,
            )
            return
        task = self.app.tasks.get(message.name)
        if task is None:
            endings.unknown(self.app, message.name, message.id, delivery.message)
            known = ", ".join(sorted(n for n in self.app.tasks if not n.startswith(("taskq.", "celery.")))) or "none"
            self._reject(
                delivery,
                message.id,
                f"unknown task {message.name!r}: it is not registered on this worker (registered: "
                f"{known}). Is the module that defines it imported by -A or listed in imports?",
                NotRegisteredError(f"task {message.name!r} is not registered on worker {self.hostname}"),
                following=message,
            )
            return
        request = Request(delivery, message, task, self.hostname)
        if self._log_info:
            logger.info("Task %s[%s] received", message.name, message.id)
        if self.events is not None:
            task_events.received(self.events, request)
        endings.received(self.app, request)
        revocations = self.revocations
        if message.id in revocations or (revocations.stamps and message.stamps and revocations.stamped(message.stamps)):
            self._discard_revoked(request)
            return
        now = time.time()
        if request.expires is not None and request.expires < now:
            self._expire(request)
            return
        eta = request.eta
        if eta is not None and eta > now + ETA_SLACK:
            if eta - now > self.eta_horizon and self.transport.capabilities.delayed_delivery:
                # Far-off tasks wait in the broker, not in this worker's memory (a broker
                # that cannot hold them leaves them in the timer, as Celery does).
                self.transport.publish(delivery.queue, delivery.message, delay=eta - now)
                self._ack([delivery])
            else:
                heapq.heappush(self.timer, (eta, next(self._sequence), request))
            return
        self.reserved.append(request)

    def _release_due(self) -> None:
        now = time.time() + ETA_SLACK
        while self.timer and self.timer[0][0] <= now:
            _, _, request = heapq.heappop(self.timer)
            if request.expires is not None and request.expires < time.time():
                self._expire(request)
            else:
                self.reserved.append(request)

    def _expire(self, request: Request) -> None:
        self._skip(request, expired=True)

    def _discard_revoked(self, request: Request) -> None:
        stamp = self.revocations.stamped(request.message.stamps) if request.message.stamps else None
        self._skip(request, expired=False, stamp=stamp)

    def _skip(self, request: Request, *, expired: bool, stamp: tuple[str, object] | None = None) -> None:
        """Record a task that will not run (revoked or expired), end what was to follow it,
        and let go of its message."""
        endings.revoked(self.app, request, expired=expired, stamp=stamp)
        if self.events is not None:
            task_events.revoked(self.events, request, expired=expired)
        why = "expired" if expired else "was revoked"
        error = TaskRevokedError(f"task {request.name}[{request.id}] {why}")
        fail_following(self.app, request.message, states.REVOKED, error, errbacks=False)
        if not request.acknowledged:
            self._ack([request.delivery])

    def _end_following(self, request: Request, error: BaseException) -> None:
        """The pool ended ``request``'s task for good (see :meth:`_settle`): what was to follow it ends too."""
        if isinstance(error, Terminated):
            fail_following(self.app, request.message, states.REVOKED, TaskRevokedError(str(error)), errbacks=False)
            return
        if not isinstance(error, TaskqError) or isinstance(error, WorkerLostError):
            error = error if isinstance(error, WorkerLostError) else WorkerLostError(repr(error))
        fail_following(self.app, request.message, states.FAILURE, error, errbacks=True)

    def _reject(
        self,
        delivery: Delivery,
        task_id: str | None,
        reason: str,
        error: BaseException | None = None,
        request: Request | None = None,
        following: protocol.TaskMessage | None = None,
    ) -> None:
        """Dead-letter ``delivery`` with ``reason``; the sender of ``task_id`` learns why, and
        what was to follow the task of ``following`` (its checked message) fails with it.

        Never raises on what the message holds: one the transport cannot store as it came
        (headers JSON cannot hold) is dead-lettered as its raw body with the reason.
        """
        try:
            try:
                self.transport.dead_letter(delivery, reason)
            except BROKER_ERRORS:
                raise
            except Exception as exc:
                stand_in = envelope.undecodable(_raw_body(delivery), f"{reason} (its headers could not be kept: {exc})")
                self.transport.dead_letter(replace(delivery, message=stand_in), reason)
        except Exception:
            logger.exception(
                "could not dead-letter a message from queue %r (%s); it stays in the queue", delivery.queue, reason
            )
            return
        finally:
            self._let_go([delivery])
        endings.dead_lettered(self.app, delivery.queue, reason, task_id=task_id, error=error, request=request)
        if following is not None:
            fail_following(self.app, following, states.FAILURE, error or TaskqError(reason), errbacks=True)

    # ---- Running ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        pool = self.pool
        while self.reserved and not self.should_stop and self._alone is None:
            room = pool.room
            if room <= 0:
                return
            batch: list[Request] = []
            # A suspect (see _is_suspect) runs alone: it waits for the pool to empty.
            suspect_waits = False
            while self.reserved and len(batch) < room:
                request = self.reserved.popleft()
                revocations = self.revocations
                if request.id in revocations or (
                    revocations.stamps and request.message.stamps and revocations.stamped(request.message.stamps)
                ):
                    self._discard_revoked(request)
                    continue
                if request.task.rate_limit:
                    wait = self._rate_limits.wait(request.name, request.task.rate_limit)
                    if wait > 0:
                        # Over its rate: it waits in the timer while other tasks go on.
                        heapq.heappush(self.timer, (time.time() + wait, next(self._sequence), request))
                        continue
                if self._counts_starts and request.acks_late and request.delivery.deliveries > 1:
                    if batch or self.running:
                        self.reserved.appendleft(request)
                        suspect_waits = True
                        break
                    self._alone = request
                    batch.append(request)
                    break
                batch.append(request)
            if batch:
                self._start_batch(batch)
            if suspect_waits or not batch:
                return

    def _start_batch(self, batch: list[Request]) -> None:
        """Start ``batch``: record the starts of what stays held while it runs (one call, or
        one per task on an inline pool, where the batch runs in turn), ack early the rest
        (one call), and hand each to the pool.

        What has not started when an exception comes stays with this worker: back in the
        reserved queue when the broker failed (it runs once the broker answers), else (a
        cold stop in the middle of an inline batch) back to the broker.
        """
        inline = self.inline
        position = 0
        entered = False  # whether batch[position] is in the pool (it may be running)
        try:
            # A request put back after a broker error has its start recorded or its early ack
            # done already (the flags say so): neither is done twice.
            if not inline:
                late = [request for request in batch if request.acks_late and not request.start_recorded]
                if late:
                    self.transport.started([request.delivery for request in late])
                    for request in late:
                        request.start_recorded = True
            # Early ack: the messages are gone before their tasks start (at most once),
            # acked together in one call.
            early = [request for request in batch if not request.acks_late and not request.acknowledged]
            if early:
                self._ack([request.delivery for request in early])
                for request in early:
                    request.acknowledged = True
            for position, request in enumerate(batch):
                entered = False
                if self.should_stop and inline:
                    # A warm stop during an inline batch: what has not started goes back.
                    self._give_back_batch(batch[position:])
                    return
                if inline and request.acks_late and not request.start_recorded:
                    self.transport.started([request.delivery])
                    request.start_recorded = True
                entered = True
                self._start(request)
        except BaseException as exc:
            rest = batch[position + 1 :] if entered else batch[position:]
            if self._alone is not None and self._alone in rest:
                self._alone = None
            if isinstance(exc, BROKER_ERRORS):
                self.reserved.extendleft(reversed(rest))
            elif rest:
                self._give_back_batch(rest)
            raise

    def _give_back_batch(self, requests: list[Request]) -> None:
        """Give back tasks taken for a batch that never started: a copy of what was acked
        early (the broker no longer has it), the message itself for what is still held."""
        acked = [request.delivery for request in requests if request.acknowledged]
        held = [request.delivery for request in requests if not request.acknowledged]
        try:
            for delivery in acked:
                self.transport.publish(delivery.queue, delivery.message)
            if held:
                self._requeue(held)
        except Exception:
            logger.exception(
                "could not give %d unstarted task(s) back; those acknowledged early are lost, the others "
                "return when their lease lapses",
                len(requests),
            )
            return
        logger.info("giving %d task(s) that had not started back to the broker", len(requests))

    def _start(self, request: Request) -> None:
        pool = self.pool
        if request.acks_late:
            self.running_unacked += 1
        else:
            request.acknowledged = True
        request.time_start = time.monotonic()
        self.running += 1
        self.active[request.id] = request
        if self.events is not None:
            task_events.started(self.events, request)
        hard, soft = request.time_limits
        self.busy_since = request.time_start
        pool.apply(
            self._target(request) if self._runs_coroutines else trace_task,
            (self.app, request),
            callback=partial(self._on_done, request),
            error_callback=partial(self._on_done, request),
            job_id=request.id,
            soft_time_limit=soft,
            hard_time_limit=hard,
        )
        self.busy_since = None
        if self.inline:
            self._settle()

    def _target(self, request: Request) -> Callable[..., object]:
        """What an event-loop pool runs for ``request``: the coroutine tracer for an
        ``async def`` task, the plain one (which the pool runs in a thread) otherwise."""
        target = self._targets.get(request.name)
        if target is None:
            is_async = inspect.iscoroutinefunction(request.task.fn)
            target = self._targets[request.name] = trace_task_async if is_async else trace_task
        return target

    def _on_done(self, request: Request, outcome: object) -> None:
        self.completions.append((request, outcome))  # type: ignore[arg-type]  # a TraceOutcome or the pool's error
        if not self.inline and threading.get_ident() != self._loop_thread:
            self._completed.set()
            if self._in_broker_wait:
                self.transport.interrupt()

    def _settle(self) -> None:
        """Let go of the messages of the tasks that ended, as :mod:`taskq.worker.acks` decides."""
        to_ack: list[Delivery] = []
        while self.completions:
            request, outcome = self.completions.popleft()
            self.running -= 1
            if not request.acknowledged:
                self.running_unacked -= 1
            self.active.pop(request.id, None)
            self.processed += 1
            self.totals[request.name] += 1
            if request is self._alone:
                self._alone = None
            if isinstance(outcome, BaseException):
                # The pool ended the task (hard time limit, terminate) or lost its process.
                action, reason = acks.after_pool_error(request, outcome)
                endings.stopped(self.app, request, outcome, requeued=action is Action.REQUEUE)
                if self.events is not None:
                    task_events.stopped(self.events, request, outcome)
                if action is not Action.REQUEUE:
                    self._end_following(request, outcome)
            else:
                action, reason = acks.after_outcome(request, outcome)
                if self.events is not None:
                    task_events.ended(self.events, request, outcome)
            if action is Action.NOTHING:
                continue
            delivery = request.delivery
            if action is Action.ACK:
                to_ack.append(delivery)
            elif action is Action.DEAD_LETTER:
                # A task that rejected its message (Reject) ended without a result: it fails,
                # and what was to follow it, so that nothing waits for it for ever.
                if not isinstance(outcome, BaseException) and outcome.state == states.REJECTED:
                    self._reject(delivery, request.id, str(reason), request=request, following=request.message)
                else:
                    self._reject(delivery, None, str(reason), request=request)
            elif action is Action.REQUEUE:
                self._requeue([delivery])
            else:
                self.transport.publish(delivery.queue, delivery.message)
        if to_ack:
            self._ack(to_ack)

    # ---- Acknowledging ------------------------------------------------------------------

    def _ack(self, deliveries: list[Delivery]) -> None:
        self.transport.ack(deliveries)
        self._let_go(deliveries)

    def _requeue(self, deliveries: list[Delivery]) -> None:
        self.transport.requeue(deliveries)
        self._let_go(deliveries)

    def _let_go(self, deliveries: list[Delivery]) -> None:
        """No longer hold ``deliveries``: the lease keeper stops renewing them."""
        with self.held_lock:
            for delivery in deliveries:
                self.held.pop(delivery.tag, None)

    def _finish_running(self) -> None:
        """On a warm stop, let tasks already in the pool finish and settle them."""
        deadline = time.monotonic() + self.worker.shutdown_grace
        while self.running > 0 and time.monotonic() < deadline:
            if self.completions:
                self._settle()
                continue
            self._wait_for_pool(min(0.5, max(0.0, deadline - time.monotonic())))
        if self.completions:
            self._settle()
        if self.running > 0:
            logger.warning(
                "%d task(s) still running after the %.0fs grace period; their messages go back",
                self.running,
                self.worker.shutdown_grace,
            )

    def _give_back_unstarted(self) -> None:
        """On a cold stop: stop the pool now; what it had taken but not started goes back.

        Tasks that finished meanwhile are settled; the ones the stop interrupts are not
        (their held messages go back with the rest, see :meth:`_give_back`).
        """
        try:
            self.pool.stop(wait=False)
        except Exception:
            logger.exception("could not stop the pool")
        unstarted: list[Request] = []
        finished: list[tuple[Request, TraceOutcome | BaseException]] = []
        while self.completions:
            request, outcome = self.completions.popleft()
            if isinstance(outcome, JobNotStartedError):
                unstarted.append(request)
            elif not isinstance(outcome, BaseException):
                finished.append((request, outcome))
        if unstarted:
            self._give_back_batch(unstarted)
        if finished:
            self.completions.extend(finished)
            try:
                self._settle()
            except Exception:
                logger.exception("could not settle %d finished task(s)", len(finished))

    def give_back_queue(self, queue: str) -> int:
        """Give back what was taken from ``queue`` and has not started (``cancel_consumer``);
        in the loop's thread. Returns how many."""
        waiting = [request for request in self.reserved if request.delivery.queue == queue]
        timed = [item for item in self.timer if item[2].delivery.queue == queue]
        if not waiting and not timed:
            return 0
        kept = [request for request in self.reserved if request.delivery.queue != queue]
        self.reserved.clear()
        self.reserved.extend(kept)
        self.timer[:] = [item for item in self.timer if item[2].delivery.queue != queue]
        heapq.heapify(self.timer)
        requests = waiting + [item[2] for item in timed]
        self._give_back_batch(requests)
        return len(requests)

    def held_deliveries(self) -> list[Delivery]:
        with self.held_lock:
            return list(self.held.values())

    def _give_back(self) -> None:
        """Requeue everything held: prefetched, waiting on an ETA, or interrupted mid-run;
        and a copy of what was acknowledged early but put back unstarted (a broker error in
        the middle of its batch), which the broker no longer has."""
        acked = [request for request in self.reserved if request.acknowledged]
        self.reserved.clear()
        self.timer.clear()
        if acked:
            self._give_back_batch(acked)
        held = self.held_deliveries()
        if held:
            logger.info("giving %d unfinished task(s) back to the broker", len(held))
            try:
                self._requeue(held)
            except Exception:
                logger.exception("could not give %d task(s) back; they return when their lease lapses", len(held))

    def close(self) -> None:
        """Close the broker connection (after the shutdown hooks have run)."""
        self.transport.close()


def _header_id(delivery: Delivery) -> str | None:
    """The task id in an undecodable message's headers, so its sender learns why it failed.

    None when the headers hold no usable id; never raises, whatever the headers are.
    """
    headers = getattr(delivery.message, "headers", None)
    if type(headers) is not dict:
        return None
    task_id = headers.get("id")
    return task_id if type(task_id) is str and 0 < len(task_id) <= ID_MAX else None


def _raw_body(delivery: Delivery) -> bytes:
    """The bytes of a message's body, whatever a transport put there."""
    body = getattr(delivery.message, "body", b"")
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return repr(body).encode("utf-8", "replace")


__all__ = ["Consumer"]

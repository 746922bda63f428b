"""Remote control in the worker: a thread that reads the mailbox, runs each request's command and replies.

The mailbox is the broker's (:meth:`taskq.drivers.transport.Transport.mailbox`): on Redis
and RabbitMQ, Celery's pidbox, so ``celery inspect``, ``celery control`` and Flower reach
this worker as they reach a Celery one. The step listens before the worker says it is
ready, so a request sent after that is never missed.

Every request comes from the broker and is checked before anything is done with it
(:func:`check_request`): one that is not a request is logged and skipped; one for
another worker, or past its ``expires``, is skipped; one naming an unknown command or
arguments the command does not take gets ``{"error": ...}`` back. A command that raises
never stops the thread.

At start the step also *mingles*, as Celery's workers do: it greets its peers with the
``hello`` command and adds the revoked ids they answer with. It does so in its own
thread, so the worker consumes at once rather than a second later; the revocations kept
in the result backend were read before the first task anyway.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from taskq.control import gather
from taskq.drivers.bootstep import Step
from taskq.drivers.support.connections import mask_url
from taskq.drivers.transport import Letter, Mailbox, MailboxReader
from taskq.errors import ConfigError
from taskq.worker.commands import (
    NO_REPLY,
    Command,
    CommandError,
    ControlState,
    LamportClock,
    addressed_to,
    registry,
)

if TYPE_CHECKING:
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

# Seconds one read of the mailbox waits before the thread looks whether it should stop.
READ_TIMEOUT = 1.0
# Seconds a command that runs in the consumer's loop may take before the reply says it is queued.
LOOP_WAIT = 5.0
# Seconds the thread waits before listening again after the broker failed it.
RETRY_DELAY = 1.0
# Seconds a starting worker collects its peers' answers to its greeting.
MINGLE_TIMEOUT = 1.0
# Seconds a stopping worker waits for the request being handled to be answered.
STOP_WAIT = 3.0


@dataclass(frozen=True)
class ControlRequest:
    """A request that passed :func:`check_request`."""

    method: str
    arguments: dict[str, object]
    destination: list[str] | None
    pattern: str | None
    matcher: str | None
    ticket: str | None
    reply_to: dict[str, str] | None
    expires: float | None
    clock: int | None


class RequestError(ValueError):
    """What arrived is not a control request; the message says why."""


def check_request(letter: Letter) -> ControlRequest:
    """The request ``letter`` carries, checked field by field (it came from the broker).

    Raises :class:`RequestError` saying which field is wrong."""
    body = letter.body
    if not isinstance(body, dict):
        raise RequestError(f"the body is a JSON {type(body).__name__}, not a mapping")
    method = body.get("method")
    if not isinstance(method, str) or not method or len(method) > 200:
        raise RequestError(f"'method' must be a command's name, not {method!r:.80}")
    arguments = body.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict) or not all(isinstance(key, str) for key in arguments):
        raise RequestError(f"'arguments' must be a mapping of names to values, not {arguments!r:.80}")
    destination = body.get("destination")
    if destination is not None and (
        not isinstance(destination, list) or not all(isinstance(name, str) for name in destination)
    ):
        raise RequestError(f"'destination' must be a list of worker names, not {destination!r:.80}")
    pattern, matcher = body.get("pattern"), body.get("matcher")
    for name, value in (("pattern", pattern), ("matcher", matcher)):
        if value is not None and not isinstance(value, str):
            raise RequestError(f"{name!r} must be text, not {value!r:.80}")
    ticket, reply_to = body.get("ticket"), body.get("reply_to")
    if reply_to is not None or ticket is not None:
        if not isinstance(ticket, str) or not ticket:
            raise RequestError(f"'ticket' must be text, not {ticket!r:.80}")
        if (
            not isinstance(reply_to, dict)
            or not isinstance(reply_to.get("exchange"), str)
            or not isinstance(reply_to.get("routing_key"), str)
            or not reply_to["routing_key"]
        ):
            raise RequestError(f"'reply_to' must hold an exchange and a routing_key, not {reply_to!r:.80}")
    expires = letter.headers.get("expires")
    if isinstance(expires, bool) or not isinstance(expires, (int, float)):
        expires = None
    elif isinstance(expires, int):
        expires = float(max(-(2**62), min(expires, 2**62)))  # JSON's integers have no bound; a float's do
    clock = letter.headers.get("clock")
    if isinstance(clock, bool) or not isinstance(clock, int):
        clock = None
    return ControlRequest(
        method=method,
        arguments=cast("dict[str, object]", arguments),
        destination=cast("list[str] | None", destination),
        pattern=cast("str | None", pattern),
        matcher=cast("str | None", matcher),
        ticket=ticket,
        reply_to=(
            {"exchange": reply_to["exchange"], "routing_key": reply_to["routing_key"]}
            if isinstance(reply_to, dict)
            else None
        ),
        expires=expires,
        clock=clock,
    )


class ControlStep(Step):
    """Answers remote control requests, when the broker has a mailbox."""

    name = "control"
    requires = ("consumer",)

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self._stopped = threading.Event()
        # Held while a request is handled: stop() waits for that one, not for a read.
        self._handling = threading.Lock()
        self._thread: threading.Thread | None = None
        self.commands: dict[str, Command] = {}
        self.state: ControlState | None = None
        #: Requests handled, for tests and ``stats``.
        self.handled = 0

    def start(self) -> None:
        worker = self.worker
        consumer = worker.consumer
        assert consumer is not None, "the control step starts after the consumer"
        if not worker.app.conf["worker_enable_remote_control"]:
            logger.info("remote control is off (worker_enable_remote_control): inspect and control get no answer")
            return
        transport = worker.app.new_transport()
        if not transport.capabilities.control:
            logger.info(
                "the broker %s has no remote control mailbox: `taskq inspect` reads heartbeats instead",
                mask_url(worker.broker_url),
            )
            transport.close()
            return
        self.state = ControlState(worker, consumer, LamportClock())
        self.commands = registry(worker.app.plugins.control_commands())
        mailbox = transport.mailbox(str(worker.app.conf["control_exchange"]))
        try:
            reader = mailbox.listen(worker.hostname)  # before ready: what is sent from now on reaches us
        except ConfigError as exc:
            # Another worker of this name holds its control queue (RabbitMQ's are exclusive, as
            # Celery's): this one still runs tasks, but cannot be reached by name.
            logger.error(
                "remote control is off for this worker: %s. inspect and control reach the other worker of "
                "this name only; give each worker its own name, e.g. -n w2@%%h",
                exc,
            )
            close_quietly(mailbox)
            transport.close()
            return
        self._thread = threading.Thread(
            target=self._run, args=(transport, mailbox, reader), name="taskq-control", daemon=True
        )
        self._thread.start()

    # ---- The thread -----------------------------------------------------------------------

    def _run(self, transport: object, mailbox: Mailbox, reader: MailboxReader | None) -> None:
        if self.worker.app.conf["worker_mingle"]:
            # its own thread and its own mailbox: requests are answered meanwhile
            threading.Thread(target=self._mingle_once, name="taskq-mingle", daemon=True).start()
        try:
            while not self._stopped.is_set():
                try:
                    if reader is None:
                        reader = mailbox.listen(self.worker.hostname)
                    letters = reader.read(READ_TIMEOUT)
                except Exception as exc:
                    logger.warning(
                        "remote control: the mailbox failed (%s); listening again in %.0fs", exc, RETRY_DELAY
                    )
                    if reader is not None:
                        close_quietly(reader)
                    reader = None
                    self._stopped.wait(RETRY_DELAY)
                    continue
                for letter in letters:
                    with self._handling:
                        if self._stopped.is_set():
                            break
                        try:
                            self._handle(mailbox, letter)
                        except Exception:  # a bug here must not leave the worker deaf
                            logger.exception("remote control: handling a request failed; carrying on")
        finally:
            if reader is not None:
                close_quietly(reader)
            close_quietly(mailbox)
            close_quietly(transport)

    def _handle(self, mailbox: Mailbox, letter: Letter) -> None:
        state = self.state
        assert state is not None
        try:
            request = check_request(letter)
        except RequestError as exc:
            logger.warning("remote control: ignoring a message that is not a control request: %s", exc)
            return
        state.clock.adjust(request.clock)
        hostname = self.worker.hostname
        if not addressed_to(hostname, request.destination, request.pattern, request.matcher):
            return
        if request.expires is not None and request.expires < time.time():
            logger.info("remote control: ignoring %r: it expired before it arrived", request.method)
            return
        reply = self._run_command(request)
        self.handled += 1
        if request.reply_to is None or request.ticket is None or reply is NO_REPLY:
            return
        try:
            mailbox.reply(
                request.reply_to, {hostname: reply}, {"ticket": request.ticket, "clock": state.clock.forward()}
            )
        except Exception as exc:
            logger.warning("remote control: could not reply to %r: %s", request.method, exc)

    def _run_command(self, request: ControlRequest) -> object:
        command = self.commands.get(request.method)
        if command is None:
            logger.warning("remote control: no command %r (asked by another program?)", request.method)
            return {"error": f"No such command: {request.method}"}
        state = self.state
        assert state is not None
        logger.info("remote control: %s %s", request.method, _shown(request.arguments))
        if command.on_loop:
            return self._on_loop(command, state, request)
        return _call(command, state, request.arguments)

    def _on_loop(self, command: Command, state: ControlState, request: ControlRequest) -> object:
        """Run ``command`` in the consumer's loop; wait for its reply a while."""
        done = threading.Event()
        outcome: list[object] = []

        def run() -> None:
            outcome.append(_call(command, state, request.arguments))
            done.set()

        state.consumer.call_soon(run)
        wait = LOOP_WAIT if request.expires is None else max(0.1, min(LOOP_WAIT, request.expires - time.time()))
        if done.wait(wait):
            return outcome[0]
        return {
            "ok": f"{command.name} is queued: the worker's loop is busy (a long task on the "
            f"{self.worker.pool_name} pool?) and runs it when it is free"
        }

    def _mingle_once(self) -> None:
        transport = self.worker.app.new_transport()
        try:
            mailbox = transport.mailbox(str(self.worker.app.conf["control_exchange"]))
            try:
                self._mingle(mailbox)
            finally:
                close_quietly(mailbox)
        finally:
            close_quietly(transport)

    def _mingle(self, mailbox: Mailbox) -> None:
        """Greet the peers (``hello``) and add the revoked ids they answer with."""
        state = self.state
        assert state is not None
        try:
            collector = mailbox.collect()
        except Exception as exc:
            logger.warning("mingle: could not open a reply queue: %s", exc)
            return
        try:
            assert collector.reply_to is not None
            ticket = uuid.uuid4().hex
            hostname = self.worker.hostname
            body = {
                "method": "hello",
                "arguments": {"from_node": hostname, "revoked": state.consumer.revocations.snapshot()},
                "destination": None,
                "pattern": None,
                "matcher": None,
                "ticket": ticket,
                "reply_to": collector.reply_to,
            }
            mailbox.broadcast(body, {"clock": state.clock.forward(), "expires": time.time() + MINGLE_TIMEOUT})
            replies: dict[str, object] = {}
            for answer in gather(collector, ticket, MINGLE_TIMEOUT):
                replies.update(answer)
        except Exception as exc:
            logger.warning("mingle: could not greet the peers: %s", exc)
            return
        finally:
            close_quietly(collector)
        learned = 0
        peers = []
        for node, reply in replies.items():
            if node == self.worker.hostname or not isinstance(reply, dict):
                continue
            answer = cast("dict[str, object]", reply)
            peers.append(node)
            learned += state.consumer.revocations.merge(answer.get("revoked"))
            state.clock.adjust(answer.get("clock"))
        if peers:
            logger.info("mingle: synced with %s (%d revoked id(s) learned)", ", ".join(sorted(peers)), learned)
        else:
            logger.info("mingle: no other worker answered")

    def stop(self) -> None:
        self._stopped.set()
        # Wait for the request being handled, if any, but not for the read in progress (up
        # to READ_TIMEOUT): the thread handles nothing more and closes its connections
        # itself when the read returns.
        if self._thread is not None and self._handling.acquire(timeout=STOP_WAIT):
            self._handling.release()


def _call(command: Command, state: ControlState, arguments: Mapping[str, object]) -> object:
    try:
        inspect.signature(command.handler).bind(state, **arguments)
    except TypeError as exc:  # arguments the command does not take
        return {"error": f"{command.name}: {exc}"}
    try:
        return command.handler(state, **arguments)
    except CommandError as exc:
        return {"error": str(exc)}
    except Exception as exc:
        logger.exception("remote control: %s failed", command.name)
        return {"error": f"{command.name} failed: {type(exc).__name__}: {exc}"}


def _shown(arguments: Mapping[str, object]) -> str:
    text = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    return text if len(text) <= 200 else text[:200] + "..."


def close_quietly(thing: object) -> None:
    close = getattr(thing, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as exc:
        logger.debug("remote control: closing %r failed: %s", thing, exc)


__all__ = ["ControlRequest", "ControlStep", "RequestError", "check_request", "close_quietly"]

"""The remote control commands a worker answers: Celery's names, arguments and replies.

``celery inspect``/``celery control``, Flower and ``taskq inspect``/``taskq control`` send
the same requests; a worker looks the method up here and replies with what Celery's
worker would, so each tool reads a taskq worker as it reads a Celery one.

A command is a function ``handler(state, **arguments)`` registered with :func:`command`.
It gets a :class:`ControlState` (the worker, its consumer) and returns the reply, a JSON
value: Celery's ``{"ok": ...}`` or ``{"error": ...}`` for control commands, the data
itself for inspect commands. Every argument arrives from the broker: a handler checks
what it uses and raises :class:`CommandError` with what is wrong, which the worker
returns as ``{"error": ...}``.

Commands that change what the consumer's loop uses (the pool's size, the queues it
consumes) run in that loop (``on_loop=True``); the others run in the control thread, so a
worker whose only thread is busy with a long task still answers ``ping`` and ``active``.

Plugins add commands through the ``taskq_register_control_commands`` hook.

The module stays whole past 500 lines on purpose: it is the one table of Celery's
commands, each a few lines, read side by side with what Celery's worker answers.
"""

from __future__ import annotations

import fnmatch
import heapq
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from taskq.drivers.support.connections import mask_url
from taskq.errors import ConfigError, PoolFeatureError
from taskq.worker.health import wall_clock

if TYPE_CHECKING:
    from taskq.worker.consumer import Consumer
    from taskq.worker.request import Request
    from taskq.worker.worker import Worker

#: Kinds of command: ``inspect`` only reads, ``control`` changes the worker.
INSPECT = "inspect"
CONTROL = "control"


#: What a handler returns to send no reply at all (a worker's own mingle greeting); None is
#: replied as ``null``, as Celery's worker does.
NO_REPLY = object()


class CommandError(Exception):
    """A request the command cannot do: its reply is ``{"error": str(exc)}``."""


@dataclass(frozen=True)
class Command:
    """One remote control command: its name, handler and how the command line calls it.

    ``args`` names the positional arguments ``taskq control NAME ...`` takes, each with a
    function that reads it from text; ``variadic`` names the one taking every argument
    left (a list). ``default_timeout`` is how long a client waits for replies.
    """

    name: str
    handler: Callable[..., object]
    kind: str = INSPECT
    on_loop: bool = False
    help: str = ""
    args: tuple[tuple[str, Callable[[str], object]], ...] = ()
    variadic: str | None = None
    aliases: tuple[str, ...] = ()
    default_timeout: float = 1.0


#: What ``registered`` shows of each task when asked for nothing, as Celery's worker (its
#: ``inspect registered`` and Flower show rate limits so).
DEFAULT_TASK_INFO_ITEMS = ("exchange", "routing_key", "rate_limit")

#: The built-in commands by name (aliases included); plugins' are added per worker.
COMMANDS: dict[str, Command] = {}


def command(
    name: str | None = None,
    *,
    kind: str = INSPECT,
    on_loop: bool = False,
    args: Sequence[tuple[str, Callable[[str], object]]] = (),
    variadic: str | None = None,
    aliases: Sequence[str] = (),
    default_timeout: float = 1.0,
) -> Callable[[Callable[..., object]], Command]:
    """Make a :class:`Command` of the decorated handler (for a plugin: return it from
    ``taskq_register_control_commands``). The built-ins are kept in :data:`COMMANDS`."""

    def make(handler: Callable[..., object]) -> Command:
        doc = (handler.__doc__ or "").strip().splitlines()
        return Command(
            name=name or handler.__name__,
            handler=handler,
            kind=kind,
            on_loop=on_loop,
            help=doc[0] if doc else "",
            args=tuple(args),
            variadic=variadic,
            aliases=tuple(aliases),
            default_timeout=default_timeout,
        )

    return make


def _builtin(cmd: Command) -> Command:
    for key in (cmd.name, *cmd.aliases):
        COMMANDS[key] = cmd
    return cmd


class LamportClock:
    """Celery's logical clock for control messages: sent with each, moved past what arrives."""

    def __init__(self) -> None:
        self.value = 0

    def forward(self) -> int:
        self.value += 1
        return self.value

    def adjust(self, other: object) -> None:
        if isinstance(other, int) and not isinstance(other, bool) and other > self.value:
            self.value = min(other, 2**62)


@dataclass
class ControlState:
    """What a command may look at and change: the worker, its consumer and their app."""

    worker: Worker
    consumer: Consumer
    clock: LamportClock

    @property
    def hostname(self) -> str:
        return self.worker.hostname


def ok(text: str) -> dict[str, str]:
    """Celery's reply to a control command that did what it was asked."""
    return {"ok": text}


# ---- Reading what comes from the broker -------------------------------------------------


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise CommandError(f"{what} must be non-empty text, not {value!r:.80}")
    return value


def _ids(value: object, what: str = "task_id") -> list[str]:
    """One id or a list of them, as Celery's clients send either."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise CommandError(f"{what} must be a task id or a list of them, not {value!r:.80}")
    return items


def _count(value: object, what: str = "n") -> int:
    if isinstance(value, str) and value.strip().isdecimal():  # isdigit() takes "²", which int() refuses
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 10_000:
        raise CommandError(f"{what} must be a whole number from 1 to 10000, not {value!r:.80}")
    return value


def _seconds(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise CommandError(f"{what} must be a number of seconds, not {value!r:.80}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 10**9:
        raise CommandError(f"{what} must be a positive number of seconds, not {value!r:.80}")
    return float(value)


def _task(state: ControlState, name: object) -> object:
    task_name = _text(name, "task_name")
    task = state.worker.app.tasks.get(task_name)
    if task is None:
        raise CommandError(f"unknown task {task_name!r}: this worker has not registered it")
    return task


# ---- What a request looks like in replies -------------------------------------------------


def _jsonable(value: object, depth: int = 0) -> object:
    """``value`` as plain JSON values; what JSON cannot hold becomes its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 20:
        return repr(value)[:200]
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    return repr(value)[:200]


def request_info(request: Request, state: ControlState) -> dict[str, object]:
    """One task this worker holds, as Celery's ``Request.info()`` shows it."""
    delivery = request.delivery
    return {
        "id": request.id,
        "name": request.name,
        "args": _jsonable(request.args),
        "kwargs": _jsonable(request.kwargs),
        "type": request.name,
        "hostname": state.hostname,
        "time_start": wall_clock(request.time_start),
        "acknowledged": request.acknowledged,
        "delivery_info": {
            "exchange": "",
            "routing_key": delivery.queue,
            "priority": delivery.message.properties.get("priority"),
            "redelivered": delivery.deliveries > 1,
        },
        "worker_pid": os.getpid() if request.time_start is not None else None,
    }


def _scheduled(state: ControlState) -> list[tuple[float, Request]]:
    """The tasks waiting in the timer for their ETA (or their rate limit), soonest first."""
    return [(due, request) for due, _, request in sorted(list(state.consumer.timer), key=lambda item: item[:2])]


# ---- Inspect ------------------------------------------------------------------------------


@_builtin
@command()
def ping(state: ControlState) -> object:
    """Answer pong: the worker is up and reads its mailbox."""
    return ok("pong")


@_builtin
@command(aliases=("dump_active",))
def active(state: ControlState, safe: object = None) -> object:
    """The tasks running now."""
    return [request_info(request, state) for request in list(state.consumer.active.values())]


@_builtin
@command(aliases=("dump_reserved",))
def reserved(state: ControlState, safe: object = None) -> object:
    """The tasks taken from the broker and waiting for a free slot of the pool."""
    return [request_info(request, state) for request in list(state.consumer.reserved)]


@_builtin
@command(aliases=("dump_schedule",))
def scheduled(state: ControlState, safe: object = None) -> object:
    """The tasks held for their ETA or countdown (or their rate limit), soonest first."""
    return [
        {
            "eta": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(due)),
            "priority": request.delivery.message.properties.get("priority"),
            "request": request_info(request, state),
        }
        for due, request in _scheduled(state)
    ]


@_builtin
@command(aliases=("dump_revoked",))
def revoked(state: ControlState) -> object:
    """The ids of the tasks revoked (those this worker knows of)."""
    return sorted(state.consumer.revocations.ids())


@_builtin
@command(aliases=("dump_tasks",), variadic="taskinfoitems")
def registered(state: ControlState, taskinfoitems: object = None) -> object:
    """The tasks this worker knows, with the attributes asked for (by default Celery's: rate_limit...)."""
    asked = taskinfoitems if isinstance(taskinfoitems, list) and taskinfoitems else DEFAULT_TASK_INFO_ITEMS
    # never a private attribute: the names come from the broker
    items = [i for i in asked if isinstance(i, str) and not i.startswith("_")]
    names = []
    for name, task in sorted(state.worker.app.tasks.items()):
        if name.startswith("celery."):
            continue
        shown = [f"{item}={getattr(task, item)}" for item in items if getattr(task, item, None) is not None]
        names.append(f"{name} [{' '.join(shown)}]" if shown else name)
    return names


@_builtin
@command(aliases=("dump_conf",), args=(("with_defaults", lambda text: text.lower() in ("1", "true", "yes")),))
def conf(state: ControlState, with_defaults: object = False) -> object:
    """The worker's settings (secrets masked); with_defaults adds those left at their default."""
    from taskq.config import DEFAULTS, plugin_settings

    defaults = {**plugin_settings(), **DEFAULTS}
    settings = state.worker.app.conf
    shown: dict[str, object] = {}
    for key in settings:
        value = settings[key]
        if not with_defaults and key in defaults and defaults[key] == value:
            continue
        shown[key] = _masked(key, _jsonable(value))
    return shown


#: Words in a setting's name (or an option's, at any depth) whose value ``conf`` hides, as Celery's.
_SECRET_NAME = re.compile(r"api|token|key|secret|pass|signature|credential", re.IGNORECASE)


def _masked(key: str, value: object) -> object:
    """``value`` (JSON values) with its secrets masked: under a secret's name, and in URLs,
    inside the options and lists it holds too."""
    if value and _SECRET_NAME.search(key) and not isinstance(value, (dict, list, bool)):
        return "****"
    if isinstance(value, str) and ("url" in key.lower() or "://" in value):
        return mask_url(value)
    if isinstance(value, dict):
        return {name: _masked(name, item) for name, item in value.items()}
    if isinstance(value, list):
        return [_masked(key, item) for item in value]
    return value


@_builtin
@command(variadic="ids", aliases=("dump_task",))
def query_task(state: ControlState, ids: object = None) -> object:
    """Where this worker holds the tasks IDS: active, reserved or scheduled, with their info."""
    wanted = set(_ids(ids, "ids"))
    found: dict[str, object] = {}
    for request in list(state.consumer.active.values()):
        if request.id in wanted:
            found[request.id] = ["active", request_info(request, state)]
    for request in list(state.consumer.reserved):
        if request.id in wanted:
            found[request.id] = ["reserved", request_info(request, state)]
    for _, request in _scheduled(state):
        if request.id in wanted:
            found[request.id] = ["scheduled", request_info(request, state)]
    return found


def queue_info(name: str) -> dict[str, object]:
    """A queue as Celery's ``active_queues`` shows it (each queue is its own direct exchange)."""
    return {
        "name": name,
        "exchange": {
            "name": name,
            "type": "direct",
            "arguments": None,
            "durable": True,
            "passive": False,
            "auto_delete": False,
            "delivery_mode": None,
            "no_declare": False,
        },
        "routing_key": name,
        "queue_arguments": None,
        "binding_arguments": None,
        "consumer_arguments": None,
        "durable": True,
        "exclusive": False,
        "auto_delete": False,
        "no_ack": False,
        "alias": None,
        "bindings": [],
        "no_declare": None,
        "expires": None,
        "message_ttl": None,
        "max_length": None,
        "max_length_bytes": None,
        "max_priority": None,
    }


@_builtin
@command()
def active_queues(state: ControlState) -> object:
    """The queues this worker consumes."""
    consumer = state.consumer
    found = []
    for name in list(consumer.queues):
        broadcast = consumer.broadcasts.own.get(name)
        info = queue_info(name)
        if broadcast is not None:  # as kombu's Broadcast shows: its own queue, the fanout exchange, an alias
            exchange, routing_key, _ = consumer.broadcasts.subscriptions[broadcast]
            info["exchange"] = {**cast("dict[str, object]", info["exchange"]), "name": exchange, "type": "fanout"}
            info.update(routing_key=routing_key, alias=broadcast, auto_delete=True)
        found.append(info)
    return found


@_builtin
@command(aliases=("dump_stats",))
def stats(state: ControlState) -> object:
    """Counters, the pool, the broker and the process's resource use, as Celery's stats."""
    import resource

    worker, consumer = state.worker, state.consumer
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pool = consumer.pool
    info = pool.info()
    hard, soft = worker.app.conf["task_time_limit"], worker.app.conf["task_soft_time_limit"]
    return {
        "broker": {
            "transport": worker.broker_url.split(":", 1)[0],
            "url": mask_url(worker.broker_url),
            "connection_errors": consumer.broker_errors,
            "reconnects": consumer.reconnects,
        },
        "clock": str(state.clock.value),
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "pool": {
            "implementation": worker.pool_name,
            "max-concurrency": pool.concurrency,
            "processes": _jsonable(info.get("processes", [os.getpid()])),
            "max-tasks-per-child": worker.app.conf["worker_max_tasks_per_child"],
            "timeouts": [soft or 0, hard or 0],
        },
        "prefetch_count": consumer.prefetch,
        "rusage": {
            "utime": usage.ru_utime,
            "stime": usage.ru_stime,
            "maxrss": usage.ru_maxrss,
            "minflt": usage.ru_minflt,
            "majflt": usage.ru_majflt,
            "nvcsw": usage.ru_nvcsw,
            "nivcsw": usage.ru_nivcsw,
        },
        "total": dict(consumer.totals),
        "uptime": int(time.monotonic() - worker.started_at),
        "peers": _peers(worker),
        "software": {"taskq": _version()},
    }


def _peers(worker: Worker) -> list[str] | None:
    from taskq.worker.gossip import peers

    return peers(worker)


def _version() -> str:
    from taskq import __version__

    return __version__


@_builtin
@command()
def report(state: ControlState) -> object:
    """A few lines on what this worker is and runs."""
    worker = state.worker
    return ok(
        f"taskq {_version()} worker {worker.hostname} (pid {os.getpid()}), pool {worker.pool_name} "
        f"x{state.consumer.pool.concurrency}, queues {', '.join(state.consumer.queues)}, "
        f"{state.consumer.processed} task(s) done; peers alive: {', '.join(_peers(worker) or []) or 'none known'}"
    )


@_builtin
@command()
def clock(state: ControlState) -> object:
    """The worker's logical clock."""
    return {"clock": state.clock.value}


@_builtin
@command()
def hello(state: ControlState, from_node: object = None, revoked: object = None) -> object:
    """Mingle: answer a starting worker's greeting with the revoked ids (and learn its own).

    ``from_node`` is the greeting worker; its own greeting gets no reply."""
    if isinstance(from_node, str) and from_node == state.hostname:
        return NO_REPLY  # our own greeting
    state.consumer.revocations.merge(revoked)
    return {"revoked": state.consumer.revocations.snapshot(), "clock": state.clock.forward()}


# ---- Control ------------------------------------------------------------------------------


def _terminate_flag(terminate: object, signal: object) -> bool:
    if signal not in (None, "", "SIGTERM", "TERM", "SIGKILL", "KILL", 9, 15):
        raise CommandError(f"signal {signal!r:.40} is not supported: give SIGTERM or SIGKILL (or none)")
    return bool(terminate)


@_builtin
@command(kind=CONTROL, variadic="task_id")
def revoke(state: ControlState, task_id: object = None, terminate: object = False, signal: object = None) -> object:
    """Revoke the tasks ``task_id`` (one or a list); ``terminate`` also stops them if they run here."""
    from taskq.control import STAMP_REVOCATION

    ids = _ids(task_id)
    for one in ids:
        if one.startswith(STAMP_REVOCATION):  # a stamp entry in disguise: revoke_by_stamped_headers checks those
            raise CommandError(f"{one!r:.80} is not a task id; revoke by stamp with revoke_by_stamped_headers")
    stop = _terminate_flag(terminate, signal)
    revocations = state.consumer.revocations
    for one in ids:
        revocations.add(one, terminate=stop)
    note = ""
    if stop:
        note = _terminate(state, ids)
    return ok(f"tasks {', '.join(ids)} flagged as revoked{note}")


def _terminate(state: ControlState, ids: Sequence[str]) -> str:
    """Stop those of ``ids`` running here (in the loop); what to add to the reply."""
    from taskq.worker.revocations import terminate_running

    consumer = state.consumer
    running = [one for one in ids if one in consumer.active]
    if not running:
        return ""
    if not consumer.pool.capabilities.terminate:
        return (
            f"; {len(running)} of them running here cannot be terminated: the {state.worker.pool_name} pool "
            "cannot stop a running task (they run to the end)"
        )
    for one in running:
        consumer.call_soon(lambda one=one: terminate_running(consumer, one))  # type: ignore[misc]
    return f"; terminating {len(running)} running here"


@_builtin
@command(kind=CONTROL, args=(("signal", str),), variadic="task_id")
def terminate(state: ControlState, signal: object = None, task_id: object = None) -> object:
    """Revoke the tasks ``task_id`` and stop those running."""
    return revoke.handler(state, task_id=task_id, terminate=True, signal=signal)


@_builtin
@command(kind=CONTROL)
def revoke_by_stamped_headers(
    state: ControlState, headers: object = None, terminate: object = False, signal: object = None
) -> object:
    """Revoke every task stamped with one of ``headers``' values (name: value or list)."""
    from taskq.control import stamp_revocation
    from taskq.worker.revocations import terminate_running

    if not isinstance(headers, dict) or not headers or not all(isinstance(k, str) and k for k in headers):
        raise CommandError(f"headers must map stamp names to values, not {headers!r:.80}")
    stop = _terminate_flag(terminate, signal)
    entry = stamp_revocation(headers)
    state.consumer.revocations.add(entry, terminate=stop)
    if stop:
        consumer = state.consumer
        consumer.call_soon(lambda: terminate_running(consumer, entry))
    return ok(f"tasks stamped {headers!r:.200} flagged as revoked")


@_builtin
@command(kind=CONTROL, args=(("task_name", str), ("rate_limit", str)))
def rate_limit(state: ControlState, task_name: object = None, rate_limit: object = None) -> object:
    """Set the rate limit of ``task_name`` (``10/s``, ``100/m``, ``5/h``, a number per second, or 0 for none)."""
    from taskq.worker.ratelimit import parse_rate

    task = _task(state, task_name)
    if isinstance(rate_limit, bool) or not isinstance(rate_limit, (str, int, float, type(None))):
        raise CommandError(f"rate_limit must be text such as '10/m' or a number, not {rate_limit!r:.40}")
    try:
        rate = parse_rate(rate_limit)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    task.rate_limit = rate_limit if rate else None  # type: ignore[attr-defined]
    consumer, name = state.consumer, str(task_name)
    consumer.call_soon(lambda: _release_rate_held(consumer, name))
    if not rate:
        return ok(f"rate limit disabled successfully for {task_name}")
    return ok("new rate limit set successfully")


def _release_rate_held(consumer: Consumer, name: str) -> None:
    """Put the tasks ``name`` held in the timer for their rate limit (not for an ETA) back
    before the pool, where the new limit decides anew; in the loop's thread. Else a task
    held under ``1/h`` would wait out its hour after the limit was lifted."""
    now = time.time()
    held = [item for item in consumer.timer if item[2].name == name and (item[2].eta is None or item[2].eta <= now)]
    if not held:
        return
    moved = {sequence for _, sequence, _ in held}
    consumer.timer[:] = [item for item in consumer.timer if item[1] not in moved]
    heapq.heapify(consumer.timer)
    consumer.reserved.extendleft(request for _, _, request in sorted(held, key=lambda item: item[:2], reverse=True))
    consumer.wake()


@_builtin
@command(kind=CONTROL, args=(("task_name", str), ("soft", float), ("hard", float)))
def time_limit(state: ControlState, task_name: object = None, soft: object = None, hard: object = None) -> object:
    """Set the soft and hard time limits of ``task_name``, in seconds (the next runs keep them)."""
    task = _task(state, task_name)
    soft_seconds, hard_seconds = _seconds(soft, "soft"), _seconds(hard, "hard")
    task.soft_time_limit = soft_seconds  # type: ignore[attr-defined]
    task.time_limit = hard_seconds  # type: ignore[attr-defined]
    caps = state.consumer.pool.capabilities
    missing = [
        what
        for what, wanted, can in (
            ("hard", hard_seconds, caps.hard_time_limit),
            ("soft", soft_seconds, caps.soft_time_limit),
        )
        if wanted and not can
    ]
    if missing:
        return ok(
            f"time limits set successfully, but the {state.worker.pool_name} pool cannot enforce "
            f"the {' and '.join(missing)} limit"
        )
    return ok("time limits set successfully")


@_builtin
@command(kind=CONTROL)
def shutdown(state: ControlState, msg: object = None) -> object:
    """Stop the worker, warm: the running tasks end first."""
    state.worker.stop()
    return ok("shutting down")


def _resize(state: ControlState, n: object, grow: bool) -> object:
    count = _count(n)
    pool = state.consumer.pool
    if not pool.capabilities.resize:
        raise CommandError(f"the {state.worker.pool_name} pool cannot grow or shrink; use prefork or thread")
    try:
        if grow:
            pool.grow(count)
        else:
            if pool.concurrency - count < 1:
                raise CommandError(f"cannot shrink a pool of {pool.concurrency} by {count}: one process must stay")
            pool.shrink(count)
    except PoolFeatureError as exc:
        raise CommandError(str(exc)) from None
    state.consumer.wake()
    return ok(f"pool will {'grow' if grow else 'shrink'}")


@_builtin
@command(kind=CONTROL, on_loop=True, args=(("n", int),))
def pool_grow(state: ControlState, n: object = 1) -> object:
    """Add ``n`` processes (threads) to the pool."""
    return _resize(state, n, grow=True)


@_builtin
@command(kind=CONTROL, on_loop=True, args=(("n", int),))
def pool_shrink(state: ControlState, n: object = 1) -> object:
    """Take ``n`` processes (threads) from the pool."""
    return _resize(state, n, grow=False)


@_builtin
@command(kind=CONTROL, on_loop=True, args=(("max", int), ("min", int)))
def autoscale(state: ControlState, max: object = None, min: object = None) -> object:  # noqa: A002 - Celery's names
    """Set the autoscaler's bounds (starting it if the worker had none)."""
    from taskq.worker.autoscale import set_autoscale

    maximum = _count(max, "max")
    minimum = _count(min, "min") if min is not None else 1
    if minimum > maximum:
        raise CommandError(f"min ({minimum}) is above max ({maximum})")
    if not state.consumer.pool.capabilities.resize:
        raise CommandError(f"the {state.worker.pool_name} pool cannot grow or shrink; use prefork or thread")
    set_autoscale(state.consumer, maximum, minimum)
    return ok(f"autoscale now max={maximum} min={minimum}")


_QUEUE_NAME = re.compile(r"^[^\x00-\x1f]{1,255}$")


@_builtin
@command(
    kind=CONTROL, on_loop=True, args=(("queue", str), ("exchange", str), ("exchange_type", str), ("routing_key", str))
)
def add_consumer(
    state: ControlState,
    queue: object = None,
    exchange: object = None,
    exchange_type: object = None,
    routing_key: object = None,
    **options: object,
) -> object:
    """Start consuming from ``queue`` as well."""
    name = _text(queue, "queue")
    if not _QUEUE_NAME.match(name):
        raise CommandError(f"{name!r:.80} is not a queue name")
    consumer = state.consumer
    if name in consumer.queues or name in consumer.broadcasts.subscriptions:
        return ok(f"already consuming from {name!r}")
    if consumer.app.routing.broadcast_of(name) is not None:
        try:
            own = consumer.broadcasts.start(name)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        return ok(f"add consumer {name} (broadcast, through {own})")
    consumer.queues.append(name)
    consumer.wake()
    return ok(f"add consumer {name}")


@_builtin
@command(kind=CONTROL, on_loop=True, args=(("queue", str),))
def cancel_consumer(state: ControlState, queue: object = None, **options: object) -> object:
    """Stop consuming from ``queue``: the messages held from it are given back."""
    name = _text(queue, "queue")
    consumer = state.consumer
    broadcasts = consumer.broadcasts
    consumed = [q for q in consumer.queues if q not in broadcasts.own] + list(broadcasts.subscriptions)
    if name not in consumed:
        raise CommandError(f"not consuming from {name!r}")
    if len(consumed) == 1:
        raise CommandError(f"{name!r} is the only queue this worker consumes; stop the worker instead")
    if broadcasts.stop(name) is None:
        consumer.queues.remove(name)
        consumer.give_back_queue(name)
    return ok(f"no longer consuming from {name}")


@_builtin
@command(kind=CONTROL, on_loop=True)
def enable_events(state: ControlState) -> object:
    """Send task events from now on (as -E)."""
    from taskq.worker.events import set_task_events

    if not set_task_events(state.worker, True):
        raise CommandError("this worker's broker cannot carry events")
    return ok("task events enabled")


@_builtin
@command(kind=CONTROL, on_loop=True)
def disable_events(state: ControlState) -> object:
    """Stop sending task events."""
    from taskq.worker.events import set_task_events

    set_task_events(state.worker, False)
    return ok("task events disabled")


@_builtin
@command(kind=CONTROL)
def heartbeat(state: ControlState) -> object:
    """Send a worker-heartbeat event now."""
    from taskq.worker.events import send_heartbeat

    send_heartbeat(state.worker)
    return None


# ---- Matching a request to this worker --------------------------------------------------


def addressed_to(hostname: str, destination: object, pattern: object, matcher: object) -> bool:
    """Whether a request with these fields is for the worker ``hostname`` (as Celery decides).

    No destination and no pattern: every worker. A destination: the names listed. A
    pattern: matched by ``matcher`` (``glob``, the default, or ``pcre``)."""
    if isinstance(destination, list) and destination:
        return hostname in destination
    if isinstance(pattern, str) and pattern:
        if matcher == "pcre":
            try:
                return re.search(pattern, hostname) is not None
            except re.error:
                return False
        return fnmatch.fnmatchcase(hostname, pattern)
    return True


def registry(extra: Mapping[str, Command] | None = None) -> dict[str, Command]:
    """The built-in commands and ``extra`` (plugins'), by name and alias."""
    found = dict(COMMANDS)
    for cmd in (extra or {}).values():
        for key in (cmd.name, *cmd.aliases):
            found[key] = cmd
    return found


__all__ = [
    "COMMANDS",
    "CONTROL",
    "INSPECT",
    "NO_REPLY",
    "Command",
    "CommandError",
    "ControlState",
    "LamportClock",
    "addressed_to",
    "command",
    "ok",
    "queue_info",
    "registry",
    "request_info",
]

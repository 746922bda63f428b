"""Sending tasks: the options of one send (:class:`SendOptions`), written once, and the send.

``App.send_task``, ``Task.apply_async``, ``Task.apply_async_async`` and ``Task.retry`` all
send through :func:`send`. The public methods take the options as keyword arguments with
Celery's names, type-checked against :class:`SendOptions`' fields: :func:`takes_send_options`
gives each method the signature of :class:`SendCall` (the task's arguments, then the
options), so the list is written here and nowhere else. At run time a method builds one
:class:`SendOptions` only when options are given; ``Task.delay`` sends with
:data:`NO_OPTIONS` and builds nothing.

Where a send goes (``queue``, ``exchange``, ``routing_key``, the task's ``queue``,
``task_routes``) is settled by the app's :class:`taskq.routing.Routing`; a send that reaches
several queues (a fanout or topic exchange) publishes one copy to each, together. Celery's
options that mean nothing here (``retry_policy``, ``mandatory``, ...) are accepted and
dropped, so Celery code runs unchanged; any other name is a ``TypeError`` that lists the
options.
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import KW_ONLY, InitVar, dataclass, fields
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar, cast

from taskq import _protocol as protocol
from taskq._ids import new_id
from taskq._running import running_context
from taskq.errors import MessageDecodeError, RoutingError, SerializationError

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.canvas import Signature
    from taskq.drivers.transport import Message
    from taskq.result import AsyncResult
    from taskq.routing import Exchange, Queue, Route
    from taskq.task import Task

logger = logging.getLogger(__name__)

C = ParamSpec("C")
S = TypeVar("S")
T = TypeVar("T")


@dataclass(slots=True, kw_only=True)
class SendOptions:
    """How to send one task: Celery's ``apply_async`` options, under Celery's names.

    When a task itself is sent, its own options (``@app.task(queue=..., expires=...)``)
    fill in what is left unset here; ``send_task`` by name knows only these. Never change
    one once made: :data:`NO_OPTIONS` is shared.
    """

    #: Run no sooner than this many seconds from now.
    countdown: float | None = None
    #: Run no sooner than this: a ``datetime`` (naive means UTC), a POSIX time or an ISO-8601 string.
    eta: object = None
    #: Skip the task once past this: seconds from now, a ``datetime``, a POSIX time or an ISO-8601 string.
    expires: object = None
    #: The queue to send to, by name or as a :class:`~taskq.routing.Queue` (kombu's too); this
    #: queue alone. ``task_routes`` (then ``task_default_queue``) when None.
    queue: str | Queue | None = None
    #: The exchange to send to (a name, an :class:`~taskq.routing.Exchange` or kombu's): the
    #: message reaches the queues ``task_queues`` binds to it with a matching ``routing_key``.
    exchange: str | Exchange | None = None
    #: The routing key: with an exchange (or a queue), what the bindings match; alone, the
    #: queue's name (or a key of ``task_default_exchange``, when that is set).
    routing_key: str | None = None
    #: The message's priority, where the transport has priorities; ``task_default_priority`` when None.
    priority: int | None = None
    #: Extra message headers; the task sees them in ``self.request.headers``.
    headers: Mapping[str, object] | None = None
    #: This id instead of a new UUID.
    task_id: str | None = None
    #: Signatures sent with the result when the task succeeds.
    link: Signature | Sequence[Signature] | None = None
    #: Signatures sent with the task's id when it fails.
    link_error: Signature | Sequence[Signature] | None = None
    #: The serializer of this message; the task's, then ``task_serializer``, when None.
    serializer: str | None = None
    #: Store no result for this call; the task's setting when None (no, when sending by name).
    ignore_result: bool | None = None
    #: Hard time limit of this call, in seconds.
    time_limit: float | None = None
    #: Soft time limit of this call, in seconds.
    soft_time_limit: float | None = None
    #: How many times the task has been retried before this send.
    retries: int = 0
    #: The id of the workflow's first task; the running task's root when None.
    root_id: str | None = None
    #: The id of the task that sent this one; the running task's when None.
    parent_id: str | None = None
    #: The group this task belongs to.
    group_id: str | None = None
    #: The task's place in its group.
    group_index: int | None = None
    #: Success callbacks as signature dicts (protocol 2's ``callbacks``), after ``link``'s.
    callbacks: Sequence[Mapping[str, object]] | None = None
    #: Error callbacks as signature dicts (protocol 2's ``errbacks``), after ``link_error``'s.
    errbacks: Sequence[Mapping[str, object]] | None = None
    #: The rest of a chain, last step first, as signature dicts.
    chain: Sequence[Mapping[str, object]] | None = None
    #: The body of the chord this task is a header task of, as a signature dict.
    chord: Mapping[str, object] | None = None
    #: Where replies go (the rpc result backend).
    reply_to: str | None = None
    #: The positional arguments as logs and monitors show them, instead of their repr.
    argsrepr: str | None = None
    #: The keyword arguments as logs and monitors show them, instead of their repr.
    kwargsrepr: str | None = None
    #: Another name for the task in logs and monitors.
    shadow: str | None = None
    #: Stamps by name, sent in the ``stamped_headers`` and ``stamps`` headers (see
    #: docs/canvas.md, "Stamping"). Celery's way also works: ``stamped_headers=[names]``
    #: with each stamp as an option of its name, as a stamped signature's options hold them.
    stamps: Mapping[str, object] | None = None


#: Every send option, by name: what ``beat_schedule`` entries may give in ``options``.
SEND_OPTIONS = frozenset(field.name for field in fields(SendOptions))
#: The options of a send that gives none (``delay``); shared, never changed.
NO_OPTIONS = SendOptions()


@dataclass(slots=True)
class SendCall(SendOptions):
    """What ``apply_async`` and ``send_task`` take: the task's arguments, then the options.

    :func:`takes_send_options` gives those methods this class's signature for type checkers;
    the Celery-only names below are accepted for Celery's sake and dropped.
    """

    args: Sequence[object] | None = None
    kwargs: Mapping[str, object] | None = None
    _: KW_ONLY
    exchange_type: InitVar[object] = None
    mandatory: InitVar[object] = None
    immediate: InitVar[object] = None
    retry: InitVar[object] = None
    retry_policy: InitVar[object] = None
    compression: InitVar[object] = None
    add_to_parent: InitVar[object] = None
    publisher: InitVar[object] = None
    producer: InitVar[object] = None
    connection: InitVar[object] = None
    delivery_mode: InitVar[object] = None
    declare: InitVar[object] = None
    stamped_headers: InitVar[object] = None
    subtask_type: InitVar[object] = None


def send_options(caller: str, options: Mapping[str, object]) -> SendOptions:
    """:class:`SendOptions` from keyword arguments given to ``caller``; Celery-only ones dropped.

    Raises:
        TypeError: for a name that is no option, listing the options.
    """
    if not options:
        return NO_OPTIONS
    if "stamped_headers" in options:
        options = _stamps_gathered(caller, options)
    try:
        return SendOptions(**options)  # type: ignore[arg-type]  # the dataclass checks the names
    except TypeError:
        pass
    # A Celery-only option, or a mistake.
    unknown = sorted(set(options) - SEND_OPTIONS - _celery_only())
    if unknown:
        from taskq.config import suggest  # only on a mistake: kept off every send

        raise TypeError(
            f"{caller}() got unknown option(s): {', '.join(unknown)}{suggest(unknown[0], SEND_OPTIONS)}; "
            f"the options are {', '.join(sorted(SEND_OPTIONS))}"
        ) from None
    return SendOptions(**{k: v for k, v in options.items() if k in SEND_OPTIONS})  # type: ignore[arg-type]  # idem


def _stamps_gathered(caller: str, options: Mapping[str, object]) -> dict[str, object]:
    """``options`` with Celery's stamping options (``stamped_headers``, and each stamp as an
    option of its name) gathered into ``stamps``."""
    names = options["stamped_headers"]
    if names is None:
        names = []
    if isinstance(names, str) or not isinstance(names, Iterable) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{caller}(): stamped_headers must be a list of stamp names, not {names!r:.100}")
    listed = list(cast("Iterable[str]", names))
    gathered = {key: value for key, value in options.items() if key != "stamped_headers" and key not in listed}
    stamps = {**cast("Mapping[str, object]", options.get("stamps") or {})}
    for name in listed:
        stamps[name] = options.get(name)
    gathered["stamps"] = stamps or None
    return gathered


@functools.cache
def _celery_only() -> frozenset[str]:
    """The Celery options :class:`SendCall` accepts and drops (read once, when first met)."""
    import inspect  # only then: kept off every start-up

    return frozenset(inspect.signature(SendCall).parameters) - SEND_OPTIONS - {"args", "kwargs"}


def _signature_of(
    template: Callable[C, object],
) -> Callable[
    [Callable[[S, Sequence[object] | None, Mapping[str, object] | None, SendOptions], T]],
    Callable[Concatenate[S, C], T],
]:
    """A decorator that gives ``method(self, args, kwargs, options)`` the signature
    ``(self, *template's parameters*)``, with its options gathered into :class:`SendOptions`."""

    def decorate(
        method: Callable[[S, Sequence[object] | None, Mapping[str, object] | None, SendOptions], T],
    ) -> Callable[Concatenate[S, C], T]:
        def send(
            self: S, args: Sequence[object] | None = None, kwargs: Mapping[str, object] | None = None, **options: object
        ) -> T:
            return method(self, args, kwargs, send_options(method.__name__, options) if options else NO_OPTIONS)

        return cast("Callable[Concatenate[S, C], T]", _named_like(send, method))

    return decorate


def _signature_by_name_of(
    template: Callable[C, object],
) -> Callable[
    [Callable[[S, str, Sequence[object] | None, Mapping[str, object] | None, SendOptions], T]],
    Callable[Concatenate[S, str, C], T],
]:
    """:func:`_signature_of` for a method that takes the task's name first."""

    def decorate(
        method: Callable[[S, str, Sequence[object] | None, Mapping[str, object] | None, SendOptions], T],
    ) -> Callable[Concatenate[S, str, C], T]:
        def send(
            self: S,
            name: str,
            args: Sequence[object] | None = None,
            kwargs: Mapping[str, object] | None = None,
            **options: object,
        ) -> T:
            return method(self, name, args, kwargs, send_options(method.__name__, options) if options else NO_OPTIONS)

        return cast("Callable[Concatenate[S, str, C], T]", _named_like(send, method))

    return decorate


def _named_like(wrapper: Callable[..., T], method: Callable[..., T]) -> Callable[..., T]:
    wrapper.__name__ = method.__name__
    wrapper.__qualname__ = method.__qualname__
    wrapper.__doc__ = method.__doc__
    wrapper.__module__ = method.__module__
    return wrapper


#: Gives ``method(self, args, kwargs, options)`` the signature of a task's ``apply_async``:
#: ``(self, args=None, kwargs=None, **options)``, the options typed as :class:`SendCall`'s.
takes_send_options = _signature_of(SendCall)
#: The same, after the task's name, for ``send_task``: ``(self, name, args=None, kwargs=None, **options)``.
takes_send_options_by_name = _signature_by_name_of(SendCall)


def send(
    app: App,
    name: str,
    args: Sequence[object] | None,
    kwargs: Mapping[str, object] | None,
    options: SendOptions,
    task: Task[..., object] | None = None,
) -> AsyncResult[object]:
    """Publish one task message; return its result.

    ``task``, when given, is the registered task being sent: its own options fill in those
    left unset, and the task running here (if any) becomes the parent.
    """
    plugins = app.plugins  # first: it settles the task's options from the settings
    queue, expires, priority, serializer = options.queue, options.expires, options.priority, options.serializer
    ignore_result, time_limit, soft_time_limit = options.ignore_result, options.time_limit, options.soft_time_limit
    root_id, parent_id = options.root_id, options.parent_id
    running = running_context()
    if task is not None:
        expires = expires if expires is not None else task.expires
        priority = priority if priority is not None else task.priority
        serializer = serializer or task.serializer
        ignore_result = ignore_result if ignore_result is not None else task.ignore_result
        time_limit = time_limit if time_limit is not None else task.time_limit
        soft_time_limit = soft_time_limit if soft_time_limit is not None else task.soft_time_limit
        if running is not None:
            root_id = root_id or running.root_id
            parent_id = parent_id or running.id
    task_id = options.task_id or new_id()
    if running is not None and not running.called_directly and running.id != task_id:
        running.children.append(task_id)
    args = args if args is not None else ()
    kwargs = kwargs if kwargs is not None else {}
    now = time.time()
    delay = 0.0
    eta_iso: str | None = None
    if options.countdown is not None:
        delay = _seconds(options.countdown, "countdown", name)
        eta_iso = _iso(now + delay, "countdown", options.countdown, name)
    elif options.eta is not None:
        eta_ts = _timestamp(options.eta, "eta", name)
        delay = eta_ts - now
        eta_iso = _iso(eta_ts, "eta", options.eta, name)
    expires_iso = None
    if expires is not None:
        if isinstance(expires, (int, float)) and not isinstance(expires, bool):
            expires_ts = now + _seconds(expires, "expires", name)
        else:
            expires_ts = _timestamp(expires, "expires", name)
        expires_iso = _iso(expires_ts, "expires", expires, name)
    route = _route(app, name, args, kwargs, options, task)
    if not route.queues:  # task_drop_unroutable: sent nowhere, as AMQP drops it
        logger.warning(
            "task %s[%s] sent to exchange %r with routing key %r reaches no queue; dropped (task_drop_unroutable)",
            name,
            task_id,
            route.exchange,
            route.routing_key,
        )
        return app.AsyncResult(task_id, task_name=name)
    if route.broadcast and not app.transport.capabilities.broadcast:
        raise RoutingError(
            f"cannot send task {name}: {', '.join(route.queues)} includes a broadcast queue, and the "
            f"{type(app.transport).__name__} broker has no broadcast queues; use a broker that has them "
            f"(redis, amqp, sqlite, filesystem, memory), or declare one queue per worker"
        )
    queue = route.queues[0]
    headers = protocol.build_headers(
        name,
        task_id,
        args=args,
        kwargs=kwargs,
        eta=eta_iso,
        expires=expires_iso,
        retries=options.retries,
        group_id=options.group_id,
        group_index=options.group_index,
        root_id=root_id,
        parent_id=parent_id,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        ignore_result=bool(ignore_result),
        argsrepr=options.argsrepr,
        kwargsrepr=options.kwargsrepr,
        shadow=options.shadow,
        stamps=options.stamps,
        extra=options.headers,
    )
    try:  # what a worker would refuse is refused here, where the caller can fix it
        protocol.check_headers(headers, {"reply_to": options.reply_to, "priority": priority})
    except MessageDecodeError as exc:
        raise ValueError(f"cannot send task {name}: {exc} (a worker would dead-letter the message)") from None
    if plugins.has_impl("taskq_before_publish"):
        plugins.before_publish(app, name, task_id, headers, queue)
    conf = app.conf
    try:
        message = protocol.encode(
            app.serializers,
            serializer or cast(str, conf["task_serializer"]),
            headers,
            args,
            kwargs,
            callbacks=_signatures(options.link, options.callbacks),
            errbacks=_signatures(options.link_error, options.errbacks),
            chain=[dict(link) for link in options.chain] if options.chain else None,
            chord=dict(options.chord) if options.chord else None,
            reply_to=options.reply_to,
            priority=priority if priority is not None else cast("int | None", conf["task_default_priority"]),
        )
    except SerializationError as exc:
        raise SerializationError(f"cannot send task {name}: {exc}") from exc
    if not route.is_default:  # where Celery's layout records it (kombu's delivery_info on Redis)
        message.properties["delivery_info"] = {"exchange": route.exchange, "routing_key": route.routing_key}
    if plugins.has_impl("taskq_message_encoded"):
        plugins.message_encoded(app, message)
    delay = delay if delay > 0 else 0.0
    held = _HELD.get()
    if held is not None:  # a part of a workflow: published with the others (see publishing_together)
        held.extend(_Held(app, target, message, delay, name, task_id) for target in route.queues)
        return app.AsyncResult(task_id, task_name=name)
    if len(route.queues) == 1:
        app.transport.publish(queue, message, delay=delay)
    else:  # one copy to each queue reached, all or none
        app.transport.publish_many([(target, message, delay) for target in route.queues])
    for target in route.queues:
        if plugins.has_impl("taskq_after_publish"):
            plugins.after_publish(app, name, task_id, target)
        if conf["task_send_sent_event"]:
            _sent_event(app, target, message, route)
    return app.AsyncResult(task_id, task_name=name)


def _route(
    app: App,
    name: str,
    args: Sequence[object],
    kwargs: Mapping[str, object],
    options: SendOptions,
    task: Task[..., object] | None,
) -> Route:
    """Where this send goes: the caller's options, the task's queue, ``task_routes``, the defaults."""
    routing = app.routing
    if options.queue is None and options.exchange is None and options.routing_key is None:
        if task is not None and task.queue:
            return routing.route(name, task_queue=task.queue)
        if routing.routes_by_name_only:
            return routing.route(name)
        described = {f.name: getattr(options, f.name) for f in fields(options) if getattr(options, f.name) is not None}
        return routing.route(name, args=args, kwargs=kwargs, options=described, task=task)
    return routing.route(name, queue=options.queue, exchange=options.exchange, routing_key=options.routing_key)


@dataclass(slots=True)
class _Held:
    """A message made by :func:`send` and held until the workflow it is part of is made whole."""

    app: App
    queue: str
    message: Message
    delay: float
    name: str
    task_id: str


# The messages held by the innermost publishing_together(); None outside one.
_HELD: ContextVar[list[_Held] | None] = ContextVar("taskq_held_messages", default=None)


@contextmanager
def publishing_together() -> Iterator[None]:
    """Hold the messages sent inside, and publish them together once the block ends well
    (``publish_many``: one round trip where the transport can, one transaction on SQLite).

    A workflow sends its parts inside one: if any part cannot be made (an argument its
    serializer cannot encode, an option a worker would refuse, a message larger than the
    broker takes), the error is raised and none of them is sent, rather than a group or a
    chord's header sent in part. Nested blocks hold for the outermost.
    """
    if _HELD.get() is not None:
        yield
        return
    held: list[_Held] = []
    token = _HELD.set(held)
    try:
        yield
    except Exception as exc:
        exc.add_note(f"None of this workflow's tasks was sent ({len(held)} were made before this error).")
        raise
    finally:
        _HELD.reset(token)
    # Reached only when the block raised nothing.
    by_transport: dict[int, tuple[App, list[_Held]]] = {}
    for item in held:  # parts of one workflow share an app, unless signatures name others
        by_transport.setdefault(id(item.app), (item.app, []))[1].append(item)
    for app, items in by_transport.values():
        app.transport.publish_many([(item.queue, item.message, item.delay) for item in items])
        plugins = app.plugins
        if plugins.has_impl("taskq_after_publish"):
            for item in items:
                plugins.after_publish(app, item.name, item.task_id, item.queue)
        if app.conf["task_send_sent_event"]:
            for item in items:
                _sent_event(app, item.queue, item.message)


def _sent_event(app: App, queue: str, message: Message, route: Route | None = None) -> None:
    """The ``task-sent`` event of a message just published (``task_send_sent_event``)."""
    headers = message.headers
    app.events.send(
        "task-sent",
        uuid=headers.get("id"),
        name=headers.get("task"),
        args=headers.get("argsrepr"),
        kwargs=headers.get("kwargsrepr"),
        retries=headers.get("retries"),
        eta=headers.get("eta"),
        expires=headers.get("expires"),
        queue=queue,
        exchange=route.exchange if route is not None else "",
        routing_key=route.routing_key if route is not None else queue,
        root_id=headers.get("root_id"),
        parent_id=headers.get("parent_id"),
    )


def _timestamp(value: object, option: str, name: str) -> float:
    """The POSIX time of an ``eta`` or ``expires`` option: a datetime, a POSIX time or ISO-8601 text."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _seconds(value, option, name)
    if isinstance(value, str):
        try:
            ts = protocol.from_iso(value)
        except MessageDecodeError as exc:
            raise ValueError(
                f"cannot send task {name}: {option}={value!r} is not an ISO-8601 date and time between the "
                "years 1 and 9999"
            ) from exc
        assert ts is not None
        return ts
    raise TypeError(
        f"cannot send task {name}: {option} must be a datetime, a POSIX time or ISO-8601 text, "
        f"not {type(value).__name__}"
    )


def _iso(seconds: float, option: str, value: object, name: str) -> str:
    """The header text of a POSIX time computed from ``option``, which must fall in the years 1 to 9999."""
    try:
        text = protocol.to_iso(seconds)
    except (ValueError, OverflowError, OSError):
        raise ValueError(
            f"cannot send task {name}: {option}={value!r} gives a time outside the years 1 to 9999"
        ) from None
    assert text is not None
    return text


def _seconds(value: object, option: str, name: str) -> float:
    """A number option (``countdown``, ``expires`` in seconds, a POSIX time), checked finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"cannot send task {name}: {option} must be a number, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"cannot send task {name}: {option}={value!r} is not a finite number of seconds")
    return seconds


def _signatures(
    link: Signature | Sequence[Signature] | None, extra: Sequence[Mapping[str, object]] | None
) -> list[dict[str, object]] | None:
    items: list[dict[str, object]] = []
    if link is not None:
        if isinstance(link, dict):
            items.append(dict(link))
        else:
            items.extend(dict(s) for s in link)
    if extra:
        items.extend(dict(s) for s in extra)
    return items or None


__all__ = [
    "NO_OPTIONS",
    "SEND_OPTIONS",
    "SendCall",
    "SendOptions",
    "publishing_together",
    "send",
    "send_options",
    "takes_send_options",
    "takes_send_options_by_name",
]

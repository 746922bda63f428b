"""Routing: Celery's queues, exchanges and bindings, declared in the settings and resolved in core.

A Celery configuration declares its queues in ``task_queues`` (kombu ``Queue`` objects
bound to ``Exchange`` objects by a routing key) and sends with ``queue=``, ``exchange=``
and ``routing_key=``. taskq reads the same declarations (its own :class:`Queue` and
:class:`Exchange`, kombu's read duck-typed without importing kombu, or plain strings and
tables from a TOML file) into a :class:`Routing`, which answers, for every transport alike,
which queues one send reaches, with AMQP's rules:

* ``direct``: the queues bound with exactly the routing key;
* ``topic``: the queues whose binding key matches, word by word (``.`` separates words,
  ``*`` is one word, ``#`` zero or more);
* ``fanout``: every queue bound to the exchange, whatever the key;
* the default exchange (``""``): the queue named by the routing key.

The sender then publishes one copy to each queue reached, together. A send that reaches no
queue is refused (:class:`~taskq.errors.RoutingError`) unless ``task_drop_unroutable`` is
set: a message dropped without a word is worse than an error. See docs/routing.md.

``task_routes`` is read in :mod:`taskq._task_routes`. The rest stays here, past 500 lines:
declarations, matching and the table are read together, and a user looks for them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from taskq._task_routes import MapRouter, routers
from taskq.errors import ConfigError, RoutingError

#: The exchange types taskq routes with.
EXCHANGE_TYPES = ("direct", "topic", "fanout")
#: AMQP's default exchange: the routing key is the name of the queue.
DEFAULT_EXCHANGE = ""
#: The direct exchange of Celery's worker-direct queues (``worker_direct``).
WORKER_DIRECT_EXCHANGE = "C.dq2"
#: The name of a worker's own queue, as Celery names it.
WORKER_DIRECT_QUEUE_FORMAT = "{hostname}.dq2"
# Most (exchange, routing key) answers kept per Routing; the cache starts over when full.
RESOLVE_CACHE_SIZE = 4096

_QUEUE_KEYS = frozenset(
    {
        "name",
        "exchange",
        "exchange_type",
        "routing_key",
        "binding_key",
        "queue_arguments",
        "max_priority",
        "durable",
        "exclusive",
        "auto_delete",
        "bindings",
        "broadcast",
    }
)
_EXCHANGE_KEYS = frozenset({"name", "type", "exchange_type", "durable", "auto_delete", "arguments"})
_ROUTE_KEYS = frozenset({"queue", "exchange", "exchange_type", "routing_key"})


@dataclass(frozen=True, slots=True)
class Exchange:
    """An exchange, as Celery (kombu) declares one: a name and a type."""

    name: str
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False
    arguments: Mapping[str, object] | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"an exchange's name is text, not {self.name!r:.60}")
        if self.type not in EXCHANGE_TYPES:
            hint = " (headers exchanges are not supported)" if self.type == "headers" else ""
            raise ConfigError(
                f"exchange {self.name!r} has type {self.type!r}{hint}; use one of {', '.join(EXCHANGE_TYPES)}"
            )


@dataclass(frozen=True, slots=True)
class Binding:
    """One binding of a queue: messages sent to ``exchange`` with a matching key reach it."""

    exchange: Exchange
    routing_key: str


class Queue:
    """A queue, as Celery (kombu) declares one.

    Without an exchange it gets one of its own name, of type direct; without a routing key
    its name is the key. ``bindings`` binds it to more exchanges (kombu's ``binding()``s).
    """

    __slots__ = (
        "auto_delete",
        "bindings",
        "broadcast",
        "durable",
        "exchange",
        "exclusive",
        "max_priority",
        "name",
        "queue_arguments",
        "routing_key",
    )

    def __init__(
        self,
        name: str,
        exchange: Exchange | str | None = None,
        routing_key: str | None = None,
        *,
        queue_arguments: Mapping[str, object] | None = None,
        max_priority: int | None = None,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        bindings: Iterable[Binding] = (),
        broadcast: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a queue needs a name (non-empty text), not {name!r:.60}")
        if isinstance(exchange, str):
            exchange = Exchange(exchange) if exchange else None
        if exchange is None:
            exchange = Exchange(name)
        if max_priority is not None and (isinstance(max_priority, bool) or not isinstance(max_priority, int)):
            raise ConfigError(f"queue {name!r}: max_priority is a whole number, not {max_priority!r:.60}")
        self.name = name
        self.exchange: Exchange = exchange
        self.routing_key: str = name if routing_key is None else routing_key
        self.queue_arguments: dict[str, object] = dict(queue_arguments or {})
        self.max_priority = max_priority
        self.durable = durable
        self.exclusive = exclusive
        self.auto_delete = auto_delete
        extra = tuple(bindings)
        for binding in extra:
            if not isinstance(binding, Binding):
                raise ConfigError(f"queue {name!r}: a binding is a taskq.routing.Binding, not {binding!r:.60}")
        self.bindings: tuple[Binding, ...] = (Binding(exchange, self.routing_key), *extra)
        #: A broadcast queue: each worker that consumes it gets a copy of every message
        #: (see :class:`Broadcast`).
        self.broadcast = broadcast
        if broadcast and (exchange.type != "fanout" or extra):
            raise ConfigError(
                f"broadcast queue {name!r}: its exchange must be a fanout exchange and its only binding "
                f"(it has {exchange.type} exchange {exchange.name!r}{' and more bindings' if extra else ''})"
            )

    def __repr__(self) -> str:
        kind = "Broadcast" if self.broadcast else "Queue"
        return f"{kind}({self.name!r}, {self.exchange!r}, routing_key={self.routing_key!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Queue):
            return NotImplemented
        return (self.name, self.bindings, self.queue_arguments, self.max_priority, self.broadcast) == (
            other.name,
            other.bindings,
            other.queue_arguments,
            other.max_priority,
            other.broadcast,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.bindings))


class Broadcast(Queue):
    """A broadcast queue, as kombu's ``Broadcast``: every worker consuming ``name`` gets its
    own copy of each message sent to it.

    The queue is bound to the fanout exchange ``name`` (or ``exchange``). A send to the
    queue or to the exchange reaches every worker consuming it at that moment (``-Q name``,
    or by default when it is in ``task_queues``); a worker started later does not see it.
    Each worker consumes through a queue of its own, ``bcast.<id>``, that lives as long as
    it does (see :meth:`taskq.drivers.transport.Transport.subscribe_broadcast`).
    """

    __slots__ = ()

    def __init__(self, name: str, exchange: Exchange | str | None = None, routing_key: str = "") -> None:
        if exchange is None or isinstance(exchange, str):
            exchange = Exchange(exchange or name, "fanout")
        super().__init__(name, exchange, routing_key, broadcast=True)


def worker_direct(hostname: str) -> Queue:
    """The queue only the worker ``hostname`` consumes (with ``worker_direct = true``), as Celery names it.

    ``add.apply_async(queue=worker_direct("w1@host"))`` runs on that worker and no other.
    """
    return Queue(WORKER_DIRECT_QUEUE_FORMAT.format(hostname=hostname), Exchange(WORKER_DIRECT_EXCHANGE), hostname)


# ---- Reading declarations: taskq's, kombu's (duck-typed), or a TOML file's -----------------


def as_exchange(value: object, where: str) -> Exchange | None:
    """The :class:`Exchange` ``value`` declares (None for the default exchange).

    ``value`` is an :class:`Exchange`, a name, a table (``{"name": ..., "type": ...}``) or an
    object with kombu's attributes (``name``, ``type``, ``durable``, ``auto_delete``).
    """
    if value is None or isinstance(value, Exchange):
        return value
    if isinstance(value, str):
        return Exchange(value) if value else None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - _EXCHANGE_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"an exchange has {', '.join(sorted(_EXCHANGE_KEYS))}"
            )
        name = value.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{where}: an exchange table needs a 'name' (text)")
        if not name:
            return None
        return Exchange(
            name,
            str(value.get("type") or value.get("exchange_type") or "direct"),
            durable=bool(value.get("durable", True)),
            auto_delete=bool(value.get("auto_delete", False)),
            arguments=cast("Mapping[str, object] | None", value.get("arguments")),
        )
    name = getattr(value, "name", None)
    if isinstance(name, str):  # kombu's Exchange
        if not name:
            return None
        return Exchange(
            name,
            str(getattr(value, "type", None) or "direct"),
            durable=bool(getattr(value, "durable", True)),
            auto_delete=bool(getattr(value, "auto_delete", False)),
            arguments=cast("Mapping[str, object] | None", getattr(value, "arguments", None)),
        )
    raise ConfigError(f"{where}: an exchange is a taskq.routing.Exchange, a name or a table, not {value!r:.60}")


def as_queue(value: object, where: str, default_exchange: Exchange | None = None) -> Queue:
    """The :class:`Queue` ``value`` declares.

    ``value`` is a :class:`Queue`, a name, a table (``{"name": "hi", "exchange": "jobs",
    "exchange_type": "topic", "routing_key": "jobs.hi.#"}``) or an object with kombu's
    attributes (``name``, ``exchange``, ``routing_key``, ``bindings``, ``queue_arguments``,
    ``max_priority``). A queue declared without an exchange gets ``default_exchange`` when
    given, else one of its own name.
    """
    if isinstance(value, Queue):
        return value
    if isinstance(value, str):
        return Queue(value, default_exchange) if value else _no_name(where)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - _QUEUE_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a queue has {', '.join(sorted(_QUEUE_KEYS))}"
            )
        name = value.get("name")
        if not isinstance(name, str) or not name:
            return _no_name(where)
        exchange_value = value.get("exchange")
        if isinstance(exchange_value, str) and value.get("exchange_type"):
            exchange_value = {"name": exchange_value, "type": value["exchange_type"]}
        if value.get("broadcast"):
            if value.get("bindings"):
                raise ConfigError(f"{where}, broadcast queue {name!r}: a broadcast queue has no other bindings")
            key = value.get("routing_key", "")
            if isinstance(exchange_value, str) or exchange_value is None:  # a name: its fanout exchange
                return Broadcast(name, exchange_value, key if isinstance(key, str) else "")
            exchange = as_exchange(exchange_value, f"{where}, queue {name!r}")
            return Broadcast(name, exchange, key if isinstance(key, str) else "")
        exchange = as_exchange(exchange_value, f"{where}, queue {name!r}") or default_exchange
        key = value.get("routing_key", value.get("binding_key"))
        if key is not None and not isinstance(key, str):
            raise ConfigError(f"{where}, queue {name!r}: routing_key is text, not {key!r:.60}")
        return Queue(
            name,
            exchange,
            key,
            queue_arguments=cast("Mapping[str, object] | None", value.get("queue_arguments")),
            max_priority=cast("int | None", value.get("max_priority")),
            durable=bool(value.get("durable", True)),
            exclusive=bool(value.get("exclusive", False)),
            auto_delete=bool(value.get("auto_delete", False)),
            bindings=_bindings(value.get("bindings"), f"{where}, queue {name!r}"),
        )
    name = getattr(value, "name", None)
    if isinstance(name, str) and hasattr(value, "routing_key"):  # kombu's Queue
        if any(cls.__name__ == "Broadcast" for cls in type(value).__mro__):
            # kombu's: its name is a queue of this process's own (bcast.<uuid>); the
            # broadcast's name is its alias, which workers select with -Q.
            alias = getattr(value, "alias", None)
            if not isinstance(alias, str) or not alias:
                raise ConfigError(f"{where}: a Broadcast queue needs a name (kombu's Broadcast('name'))")
            exchange = as_exchange(getattr(value, "exchange", None), f"{where}, broadcast {alias!r}")
            key = getattr(value, "routing_key", "")
            return Broadcast(alias, exchange, key if isinstance(key, str) else "")
        if not name:
            return _no_name(where)
        exchange = as_exchange(getattr(value, "exchange", None), f"{where}, queue {name!r}") or default_exchange
        key = getattr(value, "routing_key", None)
        priority = getattr(value, "max_priority", None)
        return Queue(
            name,
            exchange,
            key if isinstance(key, str) and (key or exchange is not None) else None,
            queue_arguments=cast("Mapping[str, object] | None", getattr(value, "queue_arguments", None)),
            max_priority=priority if isinstance(priority, int) else None,
            durable=bool(getattr(value, "durable", True)),
            exclusive=bool(getattr(value, "exclusive", False)),
            auto_delete=bool(getattr(value, "auto_delete", False)),
            bindings=_bindings(getattr(value, "bindings", None), f"{where}, queue {name!r}"),
        )
    raise ConfigError(
        f"{where}: a queue is a taskq.routing.Queue, a name, a table with a 'name', or a kombu Queue, not {value!r:.60}"
    )


def _no_name(where: str) -> Queue:
    raise ConfigError(f"{where}: a queue needs a name (non-empty text)")


def _bindings(value: object, where: str) -> list[Binding]:
    if not value:
        return []
    if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable):
        raise ConfigError(f"{where}: bindings is a list of bindings (an exchange and a routing_key each)")
    found = []
    for item in value:
        if isinstance(item, Binding):
            found.append(item)
            continue
        exchange_value = item.get("exchange") if isinstance(item, Mapping) else getattr(item, "exchange", None)
        key = item.get("routing_key") if isinstance(item, Mapping) else getattr(item, "routing_key", None)
        exchange = as_exchange(exchange_value, f"{where}, binding")
        if exchange is None:
            raise ConfigError(f"{where}: a binding needs an exchange, by name")
        found.append(Binding(exchange, key if isinstance(key, str) else ""))
    return found


# ---- Matching -------------------------------------------------------------------------------


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """Whether a topic exchange routes ``routing_key`` through a binding of ``binding_key``.

    Words are separated by dots; ``*`` matches one word, ``#`` zero or more (AMQP 0-9-1, as
    RabbitMQ does: ``jobs.#`` matches ``jobs``).
    """
    pattern = binding_key.split(".")
    words = routing_key.split(".")
    # reachable[j]: the pattern's first i words can match the key's first j words.
    reachable = [True] + [False] * len(words)
    for part in pattern:
        if part == "#":
            for j in range(1, len(words) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            for j in range(len(words), 0, -1):
                reachable[j] = reachable[j - 1] and (part == "*" or part == words[j - 1])
            reachable[0] = False
    return reachable[-1]


# ---- The routing table ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """Where one send goes: the queues it reaches, and the exchange and key it was sent with."""

    queues: tuple[str, ...]
    exchange: str
    routing_key: str
    #: One of the queues is a broadcast queue (the transport copies it to each subscriber).
    broadcast: bool = False

    @property
    def is_default(self) -> bool:
        """Sent straight to its one queue by name (as taskq sends when nothing else is asked)."""
        return self.exchange == DEFAULT_EXCHANGE and self.queues == (self.routing_key,)


class Routing:
    """The routing table of one app, read from its settings: declared queues, exchanges, routers."""

    def __init__(self, settings: Mapping[str, object]) -> None:
        self.default_queue = str(settings["task_default_queue"])
        default_exchange = settings.get("task_default_exchange")
        exchange_type = str(settings.get("task_default_exchange_type") or "direct")
        #: ``task_default_exchange`` when set: where a task goes when nothing else says.
        self.default_exchange: Exchange | None = (
            as_exchange(
                {"name": default_exchange, "type": exchange_type}
                if isinstance(default_exchange, str)
                else default_exchange,
                "task_default_exchange",
            )
            if default_exchange
            else None
        )
        key = settings.get("task_default_routing_key")
        self.default_routing_key = str(key) if key is not None else self.default_queue
        self.create_missing_queues = bool(settings.get("task_create_missing_queues", True))
        self.drop_unroutable = bool(settings.get("task_drop_unroutable", False))
        #: The declared queues by name, in the order declared (``task_queues``).
        self.queues: dict[str, Queue] = {}
        self.exchanges: dict[str, Exchange] = {WORKER_DIRECT_EXCHANGE: Exchange(WORKER_DIRECT_EXCHANGE)}
        # exchange name -> [(binding key, queue name)]
        self._bindings: dict[str, list[tuple[str, str]]] = {}
        self._resolved: dict[tuple[str, str], tuple[str, ...]] = {}
        self._by_name: dict[str, Route] = {}
        # broadcast queue name -> (fanout exchange, routing key)
        self._broadcast: dict[str, tuple[str, str]] = {}
        declared = settings.get("task_queues")
        if declared:
            if isinstance(declared, (str, Mapping)) or not isinstance(declared, Iterable):
                raise ConfigError("task_queues is a list of queues (Queue objects, names or tables)")
            for index, item in enumerate(declared):
                self.declare(as_queue(item, f"task_queues[{index}]", self.default_exchange))
        if self.default_exchange is not None:
            self._declare_exchange(self.default_exchange, "task_default_exchange")
        self._routers = routers(settings.get("task_routes"))
        #: Whether every router is a table: routes then depend on the task's name alone.
        self.routes_by_name_only = all(isinstance(router, MapRouter) for router in self._routers)

    def declare(self, queue: Queue) -> None:
        """Add ``queue`` and its bindings to the table."""
        where = f"queue {queue.name!r}"
        known = self.queues.get(queue.name)
        if known is not None and known != queue:
            raise ConfigError(f"task_queues declares the queue {queue.name!r} twice, differently; keep one")
        for binding in queue.bindings:
            self._declare_exchange(binding.exchange, where)
            entry = (binding.routing_key, queue.name)
            bound = self._bindings.setdefault(binding.exchange.name, [])
            if entry not in bound:
                bound.append(entry)
        self.queues[queue.name] = queue
        if queue.broadcast:
            # Celery gives a queue declared without a routing key task_default_routing_key
            # (the default queue's name): on Redis the key is part of the pub/sub channel.
            self._broadcast[queue.name] = (queue.exchange.name, queue.routing_key or self.default_routing_key)
        self._resolved.clear()

    def _declare_exchange(self, exchange: Exchange, where: str) -> None:
        known = self.exchanges.get(exchange.name)
        if known is not None and known.type != exchange.type:
            raise ConfigError(
                f"the exchange {exchange.name!r} is declared as {known.type} and, by {where}, as {exchange.type}; "
                f"an exchange has one type: declare it the same way everywhere"
            )
        self.exchanges.setdefault(exchange.name, exchange)

    def resolve(self, exchange: str, routing_key: str) -> tuple[str, ...]:
        """The queues a message sent to ``exchange`` with ``routing_key`` reaches (maybe none)."""
        cache_key = (exchange, routing_key)
        found = self._resolved.get(cache_key)
        if found is None:
            found = self._resolve(exchange, routing_key)
            if len(self._resolved) >= RESOLVE_CACHE_SIZE:
                self._resolved.clear()
            self._resolved[cache_key] = found
        return found

    def _resolve(self, exchange: str, routing_key: str) -> tuple[str, ...]:
        if exchange == DEFAULT_EXCHANGE:
            return (routing_key,) if routing_key else ()
        if exchange == WORKER_DIRECT_EXCHANGE and exchange not in self._bindings:
            return (WORKER_DIRECT_QUEUE_FORMAT.format(hostname=routing_key),) if routing_key else ()
        declared = self.exchanges.get(exchange)
        if declared is None:
            # An exchange nobody declared is the one of the queue of its name (Celery's
            # automatic exchange), bound by that name only.
            return (exchange,) if routing_key == exchange else ()
        bound = self._bindings.get(exchange, [])
        if declared.type == "fanout":
            return tuple(dict.fromkeys(queue for _, queue in bound))
        if declared.type == "topic":
            return tuple(dict.fromkeys(queue for key, queue in bound if topic_matches(key, routing_key)))
        return tuple(dict.fromkeys(queue for key, queue in bound if key == routing_key))

    def queue_named(self, name: str) -> Queue:
        """The declared queue ``name``, or a new one of that name (``task_create_missing_queues``)."""
        queue = self.queues.get(name)
        if queue is None:
            if not self.create_missing_queues and self.queues:
                raise RoutingError(
                    f"the queue {name!r} is not declared in task_queues ({', '.join(self.queues)}); declare it "
                    f"there, or set task_create_missing_queues = true"
                )
            queue = Queue(name)
        return queue

    # ---- Workers -----------------------------------------------------------------------

    def worker_queues(
        self,
        selected: Sequence[str] | None = None,
        excluded: Sequence[str] = (),
        *,
        hostname: str | None = None,
        direct: bool = False,
    ) -> list[str]:
        """The queues a worker consumes, as Celery's worker picks them.

        ``selected`` (``-Q``) when given, else every queue of ``task_queues``, else
        ``task_default_queue``; minus ``excluded`` (``-X``); plus the worker's own
        ``<hostname>.dq2`` when ``direct`` (``worker_direct``).

        Raises:
            RoutingError: ``-Q`` names a queue not declared (with ``task_create_missing_queues``
                off), or ``-X`` leaves nothing to consume.
        """
        if selected:
            queues = [self.queue_named(name).name for name in selected]
        elif self.queues:
            queues = list(self.queues)
        else:
            queues = [self.default_queue]
        left = [queue for queue in dict.fromkeys(queues) if queue not in set(excluded)]
        if direct and hostname:
            left.append(WORKER_DIRECT_QUEUE_FORMAT.format(hostname=hostname))
        if not left:
            raise RoutingError(
                f"the worker would consume no queue: -X {','.join(excluded)} excludes all of {', '.join(queues)}; "
                f"exclude fewer, or name the queues with -Q"
            )
        return left

    def bindings_of(self, queue: str) -> list[tuple[str, str, str]]:
        """The bindings of ``queue`` a broker must hold for Celery's clients to reach it, as
        ``(exchange, exchange type, binding key)``, beyond the direct exchange of its own name
        that every queue has (the worker declares them when it consumes the queue)."""
        declared = self.queues.get(queue)
        if declared is None:
            if queue.endswith(".dq2"):
                return [(WORKER_DIRECT_EXCHANGE, "direct", queue[: -len(".dq2")])]
            return []
        return [
            (binding.exchange.name, binding.exchange.type, binding.routing_key)
            for binding in declared.bindings
            if (binding.exchange.name, binding.exchange.type, binding.routing_key) != (queue, "direct", queue)
        ]

    # ---- One send ----------------------------------------------------------------------

    def route(
        self,
        name: str,
        *,
        queue: object = None,
        exchange: object = None,
        routing_key: str | None = None,
        task_queue: str | None = None,
        args: Sequence[object] = (),
        kwargs: Mapping[str, object] | None = None,
        options: Mapping[str, object] | None = None,
        task: object = None,
    ) -> Route:
        """Where a send of the task ``name`` goes, from what the caller gave.

        In order: the caller's ``exchange``, ``queue`` or ``routing_key``; the task's own
        ``queue``; ``task_routes``; the defaults. A queue alone is that queue and no other;
        an exchange (or a queue with a routing key) is resolved through the bindings.

        Raises:
            RoutingError: the send reaches no queue (and ``task_drop_unroutable`` is off), or
                names a queue that is not declared (``task_create_missing_queues = false``).
        """
        if queue is None and exchange is None and routing_key is None:
            if task_queue is not None:
                return self._to_queue(task_queue, None, None)
            if self.routes_by_name_only:
                found = self._by_name.get(name)
                if found is None:
                    found = self._by_name[name] = self._routed(name, (), None, None, None)
                return found
            return self._routed(name, args, kwargs, options, task)
        return self._destination(name, queue, exchange, routing_key)

    def _routed(
        self,
        name: str,
        args: Sequence[object],
        kwargs: Mapping[str, object] | None,
        options: Mapping[str, object] | None,
        task: object,
    ) -> Route:
        for router in self._routers:
            target = router(name, args, kwargs or {}, dict(options or {}), task=task)
            if target is None:
                continue
            if isinstance(target, str):
                return self._to_queue(target, None, None)
            if isinstance(target, Mapping):
                unknown = sorted(set(target) - _ROUTE_KEYS)
                if unknown:
                    raise ConfigError(
                        f"the route of task {name!r} has unknown key(s) {', '.join(map(repr, unknown))}; a route has "
                        f"{', '.join(sorted(_ROUTE_KEYS))}"
                    )
                key = target.get("routing_key")
                return self._destination(
                    name, target.get("queue"), target.get("exchange"), None if key is None else str(key)
                )
            return self._to_queue(as_queue(target, f"the route of task {name!r}").name, None, None)
        if self.default_exchange is not None:
            return self._through(name, self.default_exchange.name, self.default_routing_key)
        return self._route_to((self.default_queue,), DEFAULT_EXCHANGE, self.default_queue)

    def _destination(self, name: str, queue: object, exchange: object, routing_key: str | None) -> Route:
        if exchange is not None:
            declared = as_exchange(exchange, f"the exchange of task {name!r}")
            exchange_name = declared.name if declared is not None else DEFAULT_EXCHANGE
            if routing_key is None:
                routing_key = self._queue_of(queue, name).routing_key if queue is not None else ""
            return self._through(name, exchange_name, routing_key)
        if queue is not None:
            return self._to_queue(queue, routing_key, name)
        assert routing_key is not None
        if self.default_exchange is not None:
            return self._through(name, self.default_exchange.name, routing_key)
        return self._route_to(
            (routing_key,), DEFAULT_EXCHANGE, routing_key
        )  # the key names the queue, as it always has

    def _queue_of(self, queue: object, name: str) -> Queue:
        if isinstance(queue, str):
            return self.queue_named(queue)
        return as_queue(queue, f"the queue of task {name!r}")

    def _to_queue(self, queue: object, routing_key: str | None, name: str | None) -> Route:
        declared = self._queue_of(queue, name or "?")
        if routing_key is not None:  # a queue and a key: the key routes, through the queue's exchange
            return self._through(name or "?", declared.exchange.name, routing_key)
        if declared.exchange.name == declared.name:  # its own exchange: the default one's route, as before
            return self._route_to((declared.name,), DEFAULT_EXCHANGE, declared.name)
        return self._route_to((declared.name,), declared.exchange.name, declared.routing_key)

    def _through(self, name: str, exchange: str, routing_key: str) -> Route:
        queues = self.resolve(exchange, routing_key)
        if not queues and not self.drop_unroutable:
            raise RoutingError(self.unroutable(name, exchange, routing_key))
        if not self.create_missing_queues and self.queues:
            for queue in queues:
                self.queue_named(queue)
        return self._route_to(queues, exchange, routing_key)

    def _route_to(self, queues: tuple[str, ...], exchange: str, routing_key: str) -> Route:
        broadcast = bool(self._broadcast) and not self._broadcast.keys().isdisjoint(queues)
        return Route(queues, exchange, routing_key, broadcast)

    def broadcast_of(self, queue: str) -> tuple[str, str] | None:
        """The fanout exchange and routing key of ``queue`` when it is a declared broadcast
        queue (:class:`Broadcast`), else None. Transports read it (the ``broadcast_queues``
        option) to copy what is sent to it to every worker subscribed."""
        return self._broadcast.get(queue)

    def unroutable(self, name: str, exchange: str, routing_key: str) -> str:
        """Why a send of ``name`` to ``exchange`` with ``routing_key`` reaches no queue, and what to do."""
        if exchange == DEFAULT_EXCHANGE:
            return f"cannot send task {name}: the default exchange needs a routing key (the queue's name)"
        bound = self._bindings.get(exchange)
        if exchange not in self.exchanges or not bound:
            what = f"no queue in task_queues is bound to the exchange {exchange!r}"
        else:
            keys = ", ".join(sorted({repr(key) for key, _ in bound}))
            kind = self.exchanges[exchange].type
            what = f"the {kind} exchange {exchange!r} binds the keys {keys}, none of which matches"
        return (
            f"cannot send task {name}: exchange {exchange!r} with routing key {routing_key!r} reaches no queue "
            f"({what}). Declare a queue bound to it in task_queues, send to a queue by name, or set "
            f"task_drop_unroutable = true to drop such messages as AMQP does"
        )


__all__ = [
    "DEFAULT_EXCHANGE",
    "EXCHANGE_TYPES",
    "WORKER_DIRECT_EXCHANGE",
    "WORKER_DIRECT_QUEUE_FORMAT",
    "Binding",
    "Broadcast",
    "Exchange",
    "Queue",
    "Route",
    "Routing",
    "as_exchange",
    "as_queue",
    "topic_matches",
    "worker_direct",
]

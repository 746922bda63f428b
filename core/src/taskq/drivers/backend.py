"""The result backend contract and the key-value base class that carries its logic.

A result is stored as Celery stores it: a mapping with ``status``, ``result``,
``traceback``, ``children``, ``date_done`` and ``task_id`` under the key
``celery-task-meta-<id>``, so Celery and taskq read each other's results. A failed task's
``result`` is the exception as ``{"exc_type", "exc_message", "exc_module"}``.

A backend for a new key-value store subclasses :class:`KeyValueBackend` and writes only
the storage primitives (``get``, ``mget``, ``set``, ``delete``, ``incr``), plus
``wait_for_keys`` where the store can push a change to a waiting client.
"""

from __future__ import annotations

import datetime
import importlib
import logging
import sys
import time
import types
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict, cast

from taskq import states
from taskq.drivers.serializer import Serializer
from taskq.errors import ChordError, ConfigError, SerializationError, TaskError, TaskqError, TimeoutError

logger = logging.getLogger(__name__)

# Polling a store that cannot push: first interval and ceiling, in seconds.
POLL_INTERVAL_START = 0.005
POLL_INTERVAL_MAX = 0.5
#: Before a workflow's result id: the id under which its shape is kept (save_workflow).
WORKFLOW_PREFIX = "taskq-workflow-"
#: The state of a workflow's shape record: no task's (save_workflow).
WORKFLOW_STATE = "WORKFLOW"
#: Added to a group id: the counter that lets one chord part complete the chord (count_chord_part);
#: with ``.<task id>:<place>`` after it, how often that part tried to.
CHORD_TAKEN_SUFFIX = ".taken"
#: Added to a group id: the counter that marks the chord's body as sent (chord_body_sent).
CHORD_SENT_SUFFIX = ".sent"

Meta = dict[str, object]


@dataclass(frozen=True, slots=True)
class BackendCapabilities:
    """What a result backend does natively; ``taskq plugins`` shows these."""

    push_wait: bool = False  # a waiting client is told of a new result (no polling)
    native_join: bool = False  # many results fetched in one round trip
    chord_counter: bool = False  # an atomic counter for chord completion
    expiry: bool = False  # results expire on their own (result_expires)


@dataclass(frozen=True, slots=True)
class ChordPart:
    """One ended task of a chord's header, as :meth:`ResultBackend.count_chord_part` counts it."""

    group_id: str  # the header's group (the chord's counter)
    task_id: str  # the task whose result is this part's
    index: int | None  # its place in the header (``group_index``); None when not known
    state: str  # how it ended: SUCCESS, FAILURE, REVOKED...
    result: object  # what it returned, or the exception it ended with


#: taskq's exceptions that Celery has too, by their name in :mod:`taskq.errors`: the
#: module and type a record names instead, where Celery's own worker would store them, so
#: that a Celery client catches them as its own (``except celery.exceptions.TaskRevokedError``).
#: :func:`meta_to_exception` reads either name back as taskq's type.
CELERY_EXCEPTIONS: dict[str, tuple[str, str]] = {
    "TaskRevokedError": ("celery.exceptions", "TaskRevokedError"),
    "ChordError": ("celery.exceptions", "ChordError"),
    "MaxRetriesExceededError": ("celery.exceptions", "MaxRetriesExceededError"),
    "NotRegisteredError": ("celery.exceptions", "NotRegistered"),
    "TimeLimitExceeded": ("billiard.exceptions", "TimeLimitExceeded"),
    "SoftTimeLimitExceeded": ("billiard.exceptions", "SoftTimeLimitExceeded"),
    "Terminated": ("billiard.exceptions", "Terminated"),
    "WorkerLostError": ("billiard.exceptions", "WorkerLostError"),
}
_FROM_CELERY = {celery_name: name for name, celery_name in CELERY_EXCEPTIONS.items()}


def exception_to_meta(exc: BaseException) -> dict[str, object]:
    """Describe an exception the way Celery stores it (taskq's own under Celery's names, see
    :data:`CELERY_EXCEPTIONS`)."""
    cls = type(exc)
    module, name = cls.__module__, cls.__qualname__
    if module == "taskq.errors" and name in CELERY_EXCEPTIONS:
        module, name = CELERY_EXCEPTIONS[name]
    return {"exc_type": name, "exc_message": list(_safe_args(exc)), "exc_module": module}


def _safe_args(exc: BaseException) -> list[object]:
    args: list[object] = []
    for arg in exc.args:
        args.append(arg if isinstance(arg, (str, int, float, bool, type(None))) else repr(arg))
    return args


def meta_to_exception(value: object, modules: Collection[str] = ()) -> BaseException:
    """Rebuild a stored exception as its own type where that is safe, else as :class:`TaskError`.

    A record in the result store is untrusted: whoever can write there names the module
    and type. The type is looked up only in modules this process has already imported
    (``builtins``, the application's own, taskq's), or in ``modules`` (the
    ``result_exception_modules`` setting), the only ones ever imported here. It must be a
    class deriving from :class:`Exception` (never ``SystemExit`` or ``KeyboardInterrupt``,
    which would end the reading program) whose constructor takes the stored arguments.
    Anything else comes back as :class:`TaskError`, which carries the original module,
    type name and message. Celery's names of taskq's own exceptions
    (``celery.exceptions.TaskRevokedError``, see :data:`CELERY_EXCEPTIONS`) come back as
    taskq's.
    """
    if isinstance(value, BaseException):
        return value
    if not isinstance(value, Mapping) or "exc_type" not in value:
        return TaskError("Exception", "", _text(value))
    type_name = _text(value["exc_type"])
    module_name = _text(value.get("exc_module") or "builtins")
    raw_args = value.get("exc_message", [])
    args = tuple(raw_args) if isinstance(raw_args, (list, tuple)) else (raw_args,)
    own = _FROM_CELERY.get((module_name, type_name))
    if own is not None:
        cls = _find_exception_class("taskq.errors", own, ())
    else:
        cls = _find_exception_class(module_name, type_name, modules)
    if cls is not None:
        try:
            exc = cls(*args)
        except Exception:  # a constructor with another signature, or one that refuses
            exc = None
        if isinstance(exc, cls):
            return exc
    return TaskError(type_name, module_name, ", ".join(_text(a) for a in args))


def _text(value: object, limit: int = 10_000) -> str:
    """``value`` as text for a message, never raising, at most ``limit`` characters."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception:  # a hostile record holds plain JSON, but be sure
        text = f"<unprintable {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _find_exception_class(module_name: str, type_name: str, modules: Collection[str]) -> type[Exception] | None:
    """The exception class ``module_name.type_name`` if already imported (or allowed), else None.

    Looks names up in the objects' own ``__dict__``: a module-level ``__getattr__`` (a
    lazy import) or a descriptor never runs.
    """
    module = sys.modules.get(module_name)
    if module is None and module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception:  # any import failure means "not importable here"
            return None
    if not isinstance(module, types.ModuleType):
        return None
    obj: object = module
    for part in type_name.split("."):
        if not isinstance(obj, (types.ModuleType, type)) or not part.isidentifier():
            return None
        obj = vars(obj).get(part)
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def group_member_ids(saved: object, group_id: str) -> list[str]:
    """The task ids of a saved group's ``result``: Celery's ``GroupResult.as_tuple()``, or the
    bare list of members earlier taskq releases saved (``[[[task_id, None], None], ...]``)."""
    members = saved
    if isinstance(saved, list) and len(saved) == 2 and isinstance(saved[0], list) and saved[0][:1] == [group_id]:
        members = saved[1]  # Celery's layout: ((group_id, parent), members)
    ids: list[str] = []
    for entry in members if isinstance(members, list) else [None]:
        # each member is ((task_id, parent), children)
        if not (isinstance(entry, list) and entry and isinstance(entry[0], list) and entry[0]):
            raise SerializationError(
                f"the saved group {group_id} is malformed: {_text(saved, 200)}; it was not written by taskq or Celery"
            )
        ids.append(_text(entry[0][0]))
    return ids


def check_meta(meta: object) -> Meta:
    """``meta`` when it is a task's result record (a mapping whose ``status`` is a text).

    Raises :class:`SerializationError` saying what is wrong otherwise: a record in the
    store may have been written by anyone.
    """
    if not isinstance(meta, dict):
        raise SerializationError(f"malformed result record: {_text(meta, 200)}; a record is a mapping")
    status = meta.get("status")
    if not isinstance(status, str):
        raise SerializationError(
            f"malformed result record for task {_text(meta.get('task_id'), 200)}: its status is "
            f"{_text(status, 200)}, not a state name; it was not written by taskq or Celery"
        )
    return meta


#: Compression codecs for result records, and the magic bytes that start their output.
COMPRESSIONS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "zlib": ("zlib", (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")),
    "gzip": ("gzip", (b"\x1f\x8b",)),
    "bzip2": ("bz2", (b"BZh",)),
    "lzma": ("lzma", (b"\xfd7zXZ",)),
}


def compress(data: bytes, codec: str) -> bytes:
    """``data`` compressed with ``codec`` (one of :data:`COMPRESSIONS`)."""
    try:
        module_name, _ = COMPRESSIONS[codec]
    except KeyError:
        raise ConfigError(
            f"unknown result_compression {codec!r}; choose one of {', '.join(sorted(COMPRESSIONS))}"
        ) from None
    module = importlib.import_module(module_name)
    compressed: bytes = module.compress(data)
    return compressed


def decompress(data: bytes) -> bytes:
    """``data`` uncompressed when it starts like a known codec's output; else as it is.

    Records written before compression was turned on (or by a writer without it) stay
    readable: serialized records never start with these bytes.
    """
    for module_name, magics in COMPRESSIONS.values():
        if data.startswith(magics):
            module = importlib.import_module(module_name)
            plain: bytes = module.decompress(data)
            return plain
    return data


def utc_now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class BackendSettings(TypedDict, total=False):
    """The keyword arguments every backend's constructor takes, for a subclass that adds its own.

    ``def __init__(self, url, options=None, *, table=None, **settings: Unpack[BackendSettings])``
    hands them on with ``super().__init__(url, options, **settings)``.
    """

    serializer: Serializer | None
    expires: float | None
    compression: str | None
    max_size: int | None
    broker_url: str | None


class ResultBackend(ABC):
    """Base class of every result backend.

    The app builds one from the result settings: ``cls(url, options, serializer=...,
    expires=..., compression=..., max_size=..., broker_url=...)``. A subclass reads its URL
    and options in :meth:`setup` and writes a constructor only when it takes more arguments.
    """

    #: What this backend does natively (an instance may narrow it, as its store allows).
    capabilities: BackendCapabilities = BackendCapabilities()

    def __init__(
        self,
        url: str,
        options: Mapping[str, object] | None = None,
        *,
        serializer: Serializer | None = None,
        expires: float | None = None,
        compression: str | None = None,
        max_size: int | None = None,
        broker_url: str | None = None,
    ) -> None:
        if serializer is None:
            from taskq.drivers.serializer import JSON

            serializer = JSON
        self.url = url
        #: ``result_backend_transport_options``: what a backend reads beyond its URL.
        self.options: dict[str, object] = dict(options or {})
        self.serializer = serializer
        #: Seconds results are kept; ``None`` keeps them until forgotten.
        self.expires = expires
        #: ``result_compression``: "zlib", "gzip", "bzip2", "lzma" or None.
        self.compression = compression
        #: ``result_max_size``: the largest encoded record accepted, in bytes (None: no limit).
        self.max_size = max_size
        #: The app's ``broker_url``, for a backend that answers through the broker (rpc).
        self.broker_url = broker_url
        self.setup()

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare this backend's own state from ``url`` and ``options``; the constructor's last step.

        Connections are best opened on first use: a backend is made in processes that
        never touch it, and before a prefork worker forks.
        """

    # ---- Encoding ---------------------------------------------------------------

    def encode(self, meta: Mapping[str, object]) -> bytes:
        data = self.serializer.dumps(dict(meta))
        if self.compression is not None:
            data = compress(data, self.compression)
        if self.max_size is not None and len(data) > self.max_size:
            raise SerializationError(
                f"the result of task {meta.get('task_id')} is {len(data):,} bytes encoded, more than "
                f"result_max_size ({self.max_size:,}); return a reference to the data (a path, a URL, a key) "
                f"instead, or raise result_max_size"
            )
        return data

    def decode(self, data: bytes) -> Meta:
        """A record read from the store; :class:`SerializationError` when it is not one."""
        try:
            value = self.serializer.loads(decompress(bytes(data)))
        except TaskqError:
            raise  # the serializer's own refusal (content not allowed, say) says it already
        except Exception as exc:  # anyone may write the store: zlib.error, LZMAError, RecursionError...
            raise SerializationError(
                f"a record in the result store cannot be read ({type(exc).__name__}: {_text(exc, 200)}); "
                f"it was not written by taskq or Celery with result_serializer {self.serializer.name!r}"
            ) from None
        if not isinstance(value, dict):
            raise SerializationError(f"malformed result record: {_text(value, 200)}; a record is a mapping")
        return value

    def decode_meta(self, data: bytes) -> Meta:
        """A task's result record read from the store, checked by :func:`check_meta`."""
        return check_meta(self.decode(data))

    @staticmethod
    def make_meta(
        task_id: str,
        result: object,
        state: str,
        traceback: str | None = None,
        request_info: Mapping[str, object] | None = None,
    ) -> Meta:
        if isinstance(result, BaseException):
            result = exception_to_meta(result)
        meta: Meta = {
            "status": state,
            "result": result,
            "traceback": traceback,
            "children": [],
            "date_done": utc_now_iso() if state in states.READY_STATES else None,
            "task_id": task_id,
        }
        if request_info:
            meta.update(request_info)
        return meta

    # ---- The contract -----------------------------------------------------------

    def store_result(
        self,
        task_id: str,
        result: object,
        state: str,
        traceback: str | None = None,
        request_info: Mapping[str, object] | None = None,
    ) -> None:
        """Record ``state`` (and ``result``) for ``task_id``; a ready state wakes waiters."""
        self.store_meta(task_id, self.make_meta(task_id, result, state, traceback, request_info))

    def store_meta(self, task_id: str, meta: Meta) -> None:
        """Write the record :meth:`make_meta` built for ``task_id``; a ready ``meta["status"]`` wakes waiters."""
        raise NotImplementedError(f"{type(self).__name__} must write store_meta (or store_result)")

    @abstractmethod
    def get_task_meta(self, task_id: str) -> Meta:
        """The stored record, or a PENDING one when nothing is stored."""

    def get_many(self, task_ids: Sequence[str]) -> dict[str, Meta]:
        return {task_id: self.get_task_meta(task_id) for task_id in task_ids}

    @abstractmethod
    def forget(self, task_id: str) -> None:
        """Delete what is stored for ``task_id``."""

    def wait_for(self, task_id: str, timeout: float | None = None) -> Meta:
        """Block until ``task_id`` is ready; raise :class:`TimeoutError` after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = POLL_INTERVAL_START
        while True:
            meta = check_meta(self.get_task_meta(task_id))
            if meta["status"] in states.READY_STATES:
                return meta
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(
                    f"task {task_id} is still {meta['status']} after {timeout}s; "
                    f"is a worker consuming its queue? (taskq worker -A yourapp)"
                )
            self.wait_for_change([task_id], interval if remaining is None else min(interval, remaining))
            interval = min(interval * 2, POLL_INTERVAL_MAX)

    def wait_for_change(self, task_ids: Sequence[str], timeout: float) -> None:
        """Sleep until a result for ``task_ids`` may have changed, at most ``timeout`` s.

        Backends that can push override this; the default sleeps.
        """
        time.sleep(timeout)

    def save_group(self, group_id: str, task_ids: Sequence[str]) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot store groups")

    def restore_group(self, group_id: str) -> list[str] | None:
        raise NotImplementedError(f"{type(self).__name__} cannot store groups")

    def delete_group(self, group_id: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot store groups")

    def save_workflow(self, result_id: str, tree: Mapping[str, object]) -> None:
        """Record the shape of the workflow whose result is ``result_id`` (for ``taskq graph``).

        ``tree`` is plain JSON: nested ``{"kind": "chain" | "group" | "chord" | "task", ...}``
        nodes with the ids of every task. The default keeps it as the result record of the id
        :data:`WORKFLOW_PREFIX` + ``result_id``, in the state :data:`WORKFLOW_STATE`, so any
        backend that stores results keeps it, and expires it as it expires results.
        """
        key = WORKFLOW_PREFIX + result_id
        self.store_meta(key, self.make_meta(key, dict(tree), WORKFLOW_STATE))

    def restore_workflow(self, result_id: str) -> dict[str, object] | None:
        """The tree :meth:`save_workflow` recorded for ``result_id``; None when none is kept."""
        meta = self.get_task_meta(WORKFLOW_PREFIX + result_id)
        tree = meta.get("result")
        if meta.get("status") != WORKFLOW_STATE or not isinstance(tree, dict):
            return None
        return cast("dict[str, object]", tree)

    def incr_chord_counter(self, group_id: str) -> int:
        raise NotImplementedError(
            f"{type(self).__name__} has no atomic counter for chords; use a backend "
            f"that has one (redis, sqlite, database)"
        )

    def read_chord_counter(self, group_id: str) -> int:
        """The value of the counter :meth:`incr_chord_counter` counts for ``group_id``; 0 when missing."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot read its chord counters; use a backend that can (redis, sqlite, database)"
        )

    def set_chord_size(self, group_id: str, size: int) -> None:  # noqa: B027 - optional hook
        """Record, at send, that the chord counting in ``group_id`` has ``size`` header parts.

        The default records nothing: :meth:`count_chord_part` reads the size from the body
        (``chord_size``) or the saved group. A backend that keeps chord state as Celery's
        backend for the same store does (Redis: the ``.s`` key) writes it here.
        """

    def count_chord_part(self, part: ChordPart, size: int | None = None) -> list[Meta] | None:
        """Count ``part``; when it completes its header, take the chord: the header's records.

        ``size`` is the header's size as the body carries it (``chord_size``), when it does.
        Returns ``None`` while parts are missing, while another part holds the chord, and
        once its body was sent; else one record per header task, in header order, each
        with ``status``, ``result`` and ``task_id``. Raises :class:`ChordError` when the size
        cannot be known.

        Taking the chord is a claim, final once the taker confirms with
        :meth:`chord_body_sent` that it sent the body (or failed it). Until then, the part
        that took it, counted again, takes it again and gets the records again: its task
        ran again because the worker that took the chord died before sending the body (an
        acks-late task comes back), so the body is sent at least once. Any other part gets
        ``None``, so in a normal run exactly one call gets the records, and a part counted
        again after the confirmation gets ``None``: the body is not sent twice. (The taker's
        task running twice at once, its worker still alive, can send the body twice; it
        keeps its one frozen task id.)

        The default counts with :meth:`incr_chord_counter` and reads the members from the
        group :meth:`save_group` saved (the size is the group's, unless ``size`` says); once
        the count reaches the size and every member has ended, a second counter (the group
        id with ``.taken``) lets the first part to get there take the chord, and a counter
        per part (``.taken.<task id>:<place>``) lets that part take it again until the body
        is marked sent (``.sent``, read with :meth:`read_chord_counter`).
        """
        done = self.incr_chord_counter(part.group_id)
        member_ids = self.restore_group(part.group_id) or []
        expected = size or len(member_ids)
        if not expected:
            raise ChordError(
                f"chord {part.group_id}: the size of its header is unknown (its body carries no chord_size "
                f"and no group {part.group_id} is saved in the result backend); its body will not run. "
                f"Was the group's record expired or forgotten?"
            )
        if done < expected:
            return None
        if len(member_ids) != expected:
            raise ChordError(
                f"chord {part.group_id}: its header has {expected} tasks but the saved group lists "
                f"{len(member_ids)}; its body will not run"
            )
        # The count can run ahead of the header: a task run again (its worker died before
        # its acknowledgement) counts twice. Complete only once every member has ended.
        metas = self.get_many(member_ids)
        if any(metas[task_id]["status"] not in states.READY_STATES for task_id in member_ids):
            return None
        # The first part to find them all ended takes the chord; the part that took it
        # takes it again until its body is marked sent (its task runs again when its worker
        # died first). This part's own count goes first, so that no part ever holds the
        # chord without a count of its own: one that died between the two may take it.
        place = "" if part.index is None else part.index
        tries = self.incr_chord_counter(f"{part.group_id}{CHORD_TAKEN_SUFFIX}.{part.task_id}:{place}")
        if self.incr_chord_counter(f"{part.group_id}{CHORD_TAKEN_SUFFIX}") != 1:
            if tries == 1 or self.read_chord_counter(f"{part.group_id}{CHORD_SENT_SUFFIX}"):
                return None
            logger.warning(
                "chord %s: %s took the chord before and its body was not marked sent (its worker died?); "
                "taking it again",
                part.group_id,
                part.task_id,
            )
        return [{**metas[task_id], "task_id": task_id} for task_id in member_ids]

    def chord_body_sent(self, group_id: str) -> None:
        """Confirm that the body of the chord counting in ``group_id`` was sent (or failed).

        Called by the worker right after it published the body that :meth:`count_chord_part`
        gave it the records for (or stored the body's failure): from then on, no part
        counted again takes the chord. A worker that dies before this call leaves the
        chord to the same part counted again. The default marks it with the counter
        ``<group id>.sent``.
        """
        self.incr_chord_counter(f"{group_id}{CHORD_SENT_SUFFIX}")

    # ---- Revocations: how a revoke reaches every worker, online or not --------------

    #: Most revocations one ``revocations_since`` call reads; ``None``: all recorded so far.
    revoke_batch: int | None = None

    def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        """Record that ``task_ids`` must not run (and, with ``terminate``, be stopped)."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot record revocations; use a backend that can (sqlite, redis, memory)"
        )

    def revocations_since(self, cursor: int) -> tuple[list[tuple[str, bool]], int]:
        """Revocations recorded after ``cursor``: ``([(task_id, terminate), ...], new_cursor)``.

        A worker starts at cursor 0 (it sees every revocation still kept) and passes back
        the cursor it was given. Revocations are kept as long as results are.
        """
        return [], cursor

    # ---- Worker heartbeats: who is alive, for `taskq inspect ping` ----------------------

    def heartbeat(self, hostname: str, info: Mapping[str, object], ttl: float) -> None:
        """Record that worker ``hostname`` is consuming; the record lapses after ``ttl`` s."""
        raise NotImplementedError(f"{type(self).__name__} cannot keep worker heartbeats")

    def forget_worker(self, hostname: str) -> None:  # noqa: B027 - optional hook
        """Remove ``hostname``'s heartbeat (a clean shutdown)."""

    def workers(self) -> dict[str, Meta]:
        """The heartbeats of workers seen recently, by hostname."""
        raise NotImplementedError(f"{type(self).__name__} cannot keep worker heartbeats")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Safe to call twice."""


class KeyValueBackend(ResultBackend):
    """A result backend on any key-value store: subclasses write the storage primitives."""

    task_keyprefix = "celery-task-meta-"
    group_keyprefix = "celery-taskset-meta-"
    chord_keyprefix = "chord-unlock-"
    worker_counter_key = "taskq-workers-count"
    worker_slot_prefix = "taskq-workers-"
    worker_keyprefix = "taskq-worker-"
    revoke_counter_key = "taskq-revoked-count"
    revoke_keyprefix = "taskq-revoked-"
    #: Revocations read per round trip by ``revocations_since``.
    revoke_batch: int | None = 500

    # ---- Storage primitives -----------------------------------------------------

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    @abstractmethod
    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def incr(self, key: str, *, expires: float | None = None) -> int:
        """Atomically add one to the integer at ``key`` (0 when missing); return it."""

    # ---- The contract, on top of the primitives -----------------------------------

    def task_key(self, task_id: str) -> str:
        return self.task_keyprefix + task_id

    def store_meta(self, task_id: str, meta: Meta) -> None:
        self.set(self.task_key(task_id), self.encode(meta), expires=self.expires)
        self.on_stored(task_id, str(meta["status"]))

    def on_stored(self, task_id: str, state: str) -> None:
        """Called after a result was written; push-capable stores notify waiters here."""

    def get_task_meta(self, task_id: str) -> Meta:
        data = self.get(self.task_key(task_id))
        if data is None:
            return {"status": states.PENDING, "result": None, "traceback": None, "task_id": task_id}
        return self.decode_meta(data)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, Meta]:
        values = self.mget([self.task_key(t) for t in task_ids])
        out: dict[str, Meta] = {}
        for task_id, data in zip(task_ids, values, strict=True):
            if data is None:
                out[task_id] = {"status": states.PENDING, "result": None, "task_id": task_id}
            else:
                out[task_id] = self.decode_meta(data)
        return out

    def forget(self, task_id: str) -> None:
        self.delete(self.task_key(task_id))

    def save_group(self, group_id: str, task_ids: Sequence[str]) -> None:
        # Celery's GroupResult.as_tuple(): ((group_id, parent), [((task_id, parent), children), ...])
        members = [[[task_id, None], None] for task_id in task_ids]
        meta = {"result": [[group_id, None], members], "task_id": group_id}
        self.set(self.group_keyprefix + group_id, self.encode(meta), expires=self.expires)

    def restore_group(self, group_id: str) -> list[str] | None:
        data = self.get(self.group_keyprefix + group_id)
        if data is None:
            return None
        return group_member_ids(self.decode(data).get("result"), group_id)

    def delete_group(self, group_id: str) -> None:
        self.delete(self.group_keyprefix + group_id)

    def incr_chord_counter(self, group_id: str) -> int:
        return self.incr(self.chord_keyprefix + group_id, expires=self.expires)

    def read_chord_counter(self, group_id: str) -> int:
        raw = self.get(self.chord_keyprefix + group_id)
        return int(raw) if raw else 0

    def heartbeat(self, hostname: str, info: Mapping[str, object], ttl: float) -> None:
        key = self.worker_keyprefix + hostname
        if self.get(key) is None:
            # First beat (or after a lapse): list the name in the registry log once more.
            slot = self.incr(self.worker_counter_key)
            self.set(f"{self.worker_slot_prefix}{slot}", hostname.encode("utf-8"))
        self.set(key, self.encode({**info, "hostname": hostname, "timestamp": time.time()}), expires=ttl)

    def forget_worker(self, hostname: str) -> None:
        self.delete(self.worker_keyprefix + hostname)

    def workers(self) -> dict[str, Meta]:
        raw = self.get(self.worker_counter_key)
        count = int(raw) if raw else 0
        names = {
            value.decode("utf-8")
            for value in self.mget([f"{self.worker_slot_prefix}{slot}" for slot in range(1, count + 1)])
            if value is not None
        }
        ordered = sorted(names)
        beats = self.mget([self.worker_keyprefix + name for name in ordered])
        return {name: self.decode(beat) for name, beat in zip(ordered, beats, strict=True) if beat is not None}

    def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        # An append-only numbered log: the counter hands out slots, each slot names one
        # revocation; any store with incr() can do it, and readers never miss one.
        for task_id in task_ids:
            slot = self.incr(self.revoke_counter_key, expires=self.expires)
            entry = self.encode({"task_id": task_id, "terminate": terminate})
            self.set(f"{self.revoke_keyprefix}{slot}", entry, expires=self.expires)

    def revocations_since(self, cursor: int) -> tuple[list[tuple[str, bool]], int]:
        raw = self.get(self.revoke_counter_key)
        last = int(raw) if raw else 0
        if last < cursor:
            cursor = 0  # the log expired and restarted: read it again from the start
        found: list[tuple[str, bool]] = []
        upto = last if self.revoke_batch is None else min(last, cursor + self.revoke_batch)
        if upto > cursor:
            keys = [f"{self.revoke_keyprefix}{slot}" for slot in range(cursor + 1, upto + 1)]
            values = self.mget(keys)
            # Missing slots at the end are being written right now: read them next time.
            # A missing slot before a present one has expired.
            while values and values[-1] is None:
                values.pop()
                upto -= 1
            for data in values:
                if data is not None:
                    entry = self.decode(data)
                    found.append((str(entry["task_id"]), bool(entry.get("terminate"))))
        return found, upto


__all__ = [
    "CELERY_EXCEPTIONS",
    "WORKFLOW_PREFIX",
    "WORKFLOW_STATE",
    "BackendCapabilities",
    "BackendSettings",
    "ChordPart",
    "KeyValueBackend",
    "Meta",
    "ResultBackend",
    "exception_to_meta",
    "group_member_ids",
    "meta_to_exception",
]

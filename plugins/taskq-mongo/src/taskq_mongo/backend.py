"""The MongoDB result backend: Celery's collections and fields, TTL expiry, ``$inc`` counters.

``result_backend = "mongodb://127.0.0.1:27017/taskq"`` (Celery's scheme; the path names the
database, ``taskq`` when absent). Task results live where Celery's ``MongoBackend`` keeps
them: one document per task in ``celery_taskmeta`` with ``_id`` the task id and the fields
``status``, ``result``, ``traceback``, ``children`` and ``date_done`` (a BSON date);
``result``, ``children``, ``args`` and ``kwargs`` hold the serializer's text, as Celery
stores them. Groups are documents in ``celery_groupmeta`` whose ``result`` is the encoded
list of member ids. The option keys ``taskmeta_collection`` and ``groupmeta_collection``
rename them, as Celery's ``mongodb_backend_settings`` do.

Everything else the core keeps on the key-value primitives (chord counters, revocations,
worker heartbeats) lives in ``taskq_kv``: ``{_id: key, value: <bytes>}`` or, for a counter,
``{_id: key, n: <int>}``. Counters are ``find_one_and_update`` with ``$inc`` and
``return_document=AFTER`` on a document created first with ``insert_one``: an *upsert*
that races another first-time upsert may return ``None`` after applying its increment
(seen on secantusdb), which no retry can repair, whereas an insert that loses the race
fails cleanly with a duplicate key.

Expiry: each document carries an ``expires_at`` date and every collection has a TTL index
on it, so MongoDB deletes expired documents (within about a minute); reads ignore
documents already past ``expires_at`` meanwhile.

A lost connection is retried with backoff (:data:`RETRYING`) before the operation raises
:class:`~taskq.errors.BackendUnavailableError`.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import pymongo
import pymongo.errors
from bson.binary import Binary
from pymongo import ReturnDocument

from taskq import states
from taskq.drivers.backend import BackendCapabilities, KeyValueBackend, Meta
from taskq.drivers.support.connections import current_pid, keep_inherited, mask_url
from taskq.drivers.support.retrying import RetryPolicy
from taskq.errors import BackendUnavailableError

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_DATABASE = "taskq"
TASKMETA_COLLECTION = "celery_taskmeta"
GROUPMETA_COLLECTION = "celery_groupmeta"
KV_COLLECTION = "taskq_kv"
# Fields of a task document that hold the serializer's output, as in Celery.
ENCODED_FIELDS = frozenset({"result", "children", "args", "kwargs"})
# Milliseconds pymongo waits for a server before an operation fails.
SERVER_SELECTION_TIMEOUT_MS = 3000
CONNECT_TIMEOUT_MS = 3000
# Expiry times are rounded up to a whole multiple of this many seconds (BSON dates are in ms).
EXPIRY_TICK = 1.0

_CONNECTION_ERRORS = (pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError)
# After a lost connection: five tries in all, pausing 0.2 s, then twice as long each time up to 2 s.
RETRYING = RetryPolicy(_CONNECTION_ERRORS, attempts=5, first_delay=0.2, max_delay=2.0)

Document = dict[str, object]


def database_name(url: str) -> str:
    """The database a ``mongodb://`` URL names in its path, ``taskq`` when it names none."""
    name = urlsplit(url).path.lstrip("/").split("/", 1)[0]
    return name or DEFAULT_DATABASE


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _is_live(doc: Mapping[str, object] | None, now: datetime.datetime) -> bool:
    if doc is None:
        return False
    expires_at = doc.get("expires_at")
    return not (isinstance(expires_at, datetime.datetime) and expires_at <= now)


class MongoBackend(KeyValueBackend):
    """Result backend on MongoDB in Celery's collections, with TTL-index expiry."""

    capabilities = BackendCapabilities(push_wait=False, native_join=True, chord_counter=True, expiry=True)

    def setup(self) -> None:
        self.taskmeta_collection = str(self.options.get("taskmeta_collection", TASKMETA_COLLECTION))
        self.groupmeta_collection = str(self.options.get("groupmeta_collection", GROUPMETA_COLLECTION))
        self._client: pymongo.MongoClient[Document] | None = None
        self._database: Database[Document] | None = None
        self._lock = threading.Lock()
        self._pid = current_pid()  # the process whose client (sockets, monitor threads) this is

    # ---- Connection -------------------------------------------------------------------

    def _db(self) -> Database[Document]:
        if self._pid != current_pid():
            self._forget_parent()
        if self._database is None:
            with self._lock:
                if self._database is None:
                    self._database = self._connect()
        return self._database

    def _forget_parent(self) -> None:
        """In a forked child: a client of its own (pymongo's are not fork-safe); the parent's is left alone."""
        keep_inherited(self._client)
        self._client = self._database = None
        self._lock = threading.Lock()  # another thread of the parent may have held it at the fork
        self._pid = current_pid()

    def _connect(self) -> Database[Document]:
        seconds = self.options.get("server_selection_timeout", SERVER_SELECTION_TIMEOUT_MS / 1000)
        timeout = int(float(str(seconds)) * 1000)
        client: pymongo.MongoClient[Document] = pymongo.MongoClient(
            self.url, tz_aware=True, serverSelectionTimeoutMS=timeout, connectTimeoutMS=CONNECT_TIMEOUT_MS
        )
        try:
            client.admin.command("ping")
            database = client[database_name(self.url)]
            for name in (self.taskmeta_collection, self.groupmeta_collection, KV_COLLECTION):
                database[name].create_index("expires_at", expireAfterSeconds=0)
        except pymongo.errors.PyMongoError as exc:
            client.close()
            raise self._unavailable(exc) from exc
        logger.info("result backend connected to %s", mask_url(self.url))
        self._client = client
        return database

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError:
        masked = mask_url(self.url)
        return BackendUnavailableError(
            f"cannot reach the MongoDB result backend at {masked} ({type(exc).__name__}: {exc}); "
            f"is MongoDB running and the URL right? Check with: mongosh '{masked}' --eval 'db.runCommand({{ping: 1}})'"
        )

    def _retry(self, operation: Callable[[Database[Document]], T]) -> T:
        """Run ``operation`` on the database, retrying a lost connection with backoff."""
        return RETRYING.run(lambda: operation(self._db()), on_retry=self._retrying, give_up=self._unavailable)

    def _retrying(self, exc: BaseException, delay: float) -> None:
        logger.warning("lost the result backend at %s; retrying in %.1fs", mask_url(self.url), delay)

    def _expires_at(self, expires: float | None) -> datetime.datetime | None:
        if expires is None:
            return None
        # Rounded up to a tick, so a result and its group written together expire together.
        deadline = time.time() + expires
        return datetime.datetime.fromtimestamp(math.ceil(deadline / EXPIRY_TICK) * EXPIRY_TICK, datetime.UTC)

    # ---- Encoding of single fields -------------------------------------------------------

    def _dump(self, value: object) -> object:
        data = self.serializer.dumps(value)
        if self.serializer.content_encoding == "binary":
            return Binary(data)
        return data.decode(self.serializer.content_encoding)

    def _load(self, value: object) -> object:
        if isinstance(value, str):
            return self.serializer.loads(value.encode(self.serializer.content_encoding))
        if isinstance(value, bytes):
            return self.serializer.loads(bytes(value))
        return value

    def _to_document(self, meta: Meta) -> Document:
        doc: Document = {"_id": meta["task_id"]}
        for key, value in meta.items():
            if key == "task_id":
                continue
            if key == "date_done":
                doc[key] = _now() if value else None
            else:
                doc[key] = self._dump(value) if key in ENCODED_FIELDS else value
        doc["expires_at"] = self._expires_at(self.expires)
        return doc

    def _from_document(self, doc: Mapping[str, object]) -> Meta:
        meta: Meta = {}
        for key, value in doc.items():
            if key in ("_id", "expires_at"):
                continue
            if key == "date_done" and isinstance(value, datetime.datetime):
                meta[key] = value.isoformat()
            else:
                meta[key] = self._load(value) if key in ENCODED_FIELDS else value
        meta["task_id"] = doc["_id"]
        return meta

    # ---- Results and groups, in Celery's collections ----------------------------------

    def store_meta(self, task_id: str, meta: Meta) -> None:
        doc = self._to_document(meta)
        self._retry(lambda db: db[self.taskmeta_collection].replace_one({"_id": task_id}, doc, upsert=True))

    def get_task_meta(self, task_id: str) -> Meta:
        return self.get_many([task_id])[task_id]

    def get_many(self, task_ids: Sequence[str]) -> dict[str, Meta]:
        if not task_ids:
            return {}
        ids = list(dict.fromkeys(task_ids))
        docs = self._retry(lambda db: list(db[self.taskmeta_collection].find({"_id": {"$in": ids}})))
        now = _now()
        found = {doc["_id"]: doc for doc in docs if _is_live(doc, now)}
        out: dict[str, Meta] = {}
        for task_id in task_ids:
            doc = found.get(task_id)
            if doc is None:
                out[task_id] = {"status": states.PENDING, "result": None, "traceback": None, "task_id": task_id}
            else:
                out[task_id] = self._from_document(doc)
        return out

    def forget(self, task_id: str) -> None:
        self._retry(lambda db: db[self.taskmeta_collection].delete_one({"_id": task_id}))

    def save_group(self, group_id: str, task_ids: Sequence[str]) -> None:
        doc: Document = {
            "_id": group_id,
            "result": self._dump(list(task_ids)),
            "date_done": _now(),
            "expires_at": self._expires_at(self.expires),
        }
        self._retry(lambda db: db[self.groupmeta_collection].replace_one({"_id": group_id}, doc, upsert=True))

    def restore_group(self, group_id: str) -> list[str] | None:
        doc = self._retry(lambda db: db[self.groupmeta_collection].find_one({"_id": group_id}))
        if not _is_live(doc, _now()):
            return None
        assert doc is not None
        members = self._load(doc.get("result"))
        assert isinstance(members, list)
        return [str(member) for member in members]

    def delete_group(self, group_id: str) -> None:
        self._retry(lambda db: db[self.groupmeta_collection].delete_one({"_id": group_id}))

    # ---- Key-value primitives, for counters, revocations and heartbeats -----------------

    def _kv(self, db: Database[Document]) -> Collection[Document]:
        return db[KV_COLLECTION]

    @staticmethod
    def _value(doc: Mapping[str, object]) -> bytes | None:
        value = doc.get("value")
        if isinstance(value, bytes):
            return bytes(value)
        count = doc.get("n")
        return None if count is None else str(count).encode("ascii")

    def get(self, key: str) -> bytes | None:
        return self.mget([key])[0]

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        wanted = list(dict.fromkeys(keys))
        docs = self._retry(lambda db: list(self._kv(db).find({"_id": {"$in": wanted}})))
        now = _now()
        found = {doc["_id"]: self._value(doc) for doc in docs if _is_live(doc, now)}
        return [found.get(key) for key in keys]

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        doc: Document = {"_id": key, "value": Binary(value), "expires_at": self._expires_at(expires)}
        self._retry(lambda db: self._kv(db).replace_one({"_id": key}, doc, upsert=True))

    def delete(self, key: str) -> None:
        self._retry(lambda db: self._kv(db).delete_one({"_id": key}))

    def incr(self, key: str, *, expires: float | None = None) -> int:
        while True:
            doc = self._retry(functools.partial(self._increment, key, expires))
            if doc is not None:
                count = doc.get("n")
                assert isinstance(count, int)
                return count
            self._retry(functools.partial(self._create_counter, key, expires))

    def _increment(self, key: str, expires: float | None, db: Database[Document]) -> Document | None:
        """``$inc`` the live counter at ``key``; ``None`` when it is missing or expired."""
        live = {"_id": key, "$or": [{"expires_at": None}, {"expires_at": {"$gt": _now()}}]}
        update: Document = {"$inc": {"n": 1}}
        if expires is not None:
            update["$set"] = {"expires_at": self._expires_at(expires)}
        return db[KV_COLLECTION].find_one_and_update(live, update, return_document=ReturnDocument.AFTER)

    def _create_counter(self, key: str, expires: float | None, db: Database[Document]) -> None:
        """Start the counter at ``key`` again at 0, replacing an expired one."""
        kv = db[KV_COLLECTION]
        kv.delete_one({"_id": key, "expires_at": {"$lte": _now()}})
        # Another client may have created it first: then increment theirs.
        with contextlib.suppress(pymongo.errors.DuplicateKeyError):
            kv.insert_one({"_id": key, "n": 0, "expires_at": self._expires_at(expires)})

    def close(self) -> None:
        if self._pid != current_pid():
            self._forget_parent()
        with self._lock:
            client, self._client, self._database = self._client, None, None
        if client is not None:
            client.close()


__all__ = ["MongoBackend", "database_name"]

"""The benchmark's tasks for huey: ``huey_consumer benchmarks.tasks_huey.huey`` (or ``.huey_noresults``).

``huey`` stores results, including ``None`` (``store_none=True``: huey skips storing a
``None`` return by default, which would make "results stored" store nothing and
``get()`` wait forever); ``huey_noresults`` is built with ``results=False``. Both are
``SqliteHuey`` on the SQLite file in the directory named by ``BENCH_DIR`` (set by the
harness), or ``RedisHuey`` when ``BENCH_HUEY_REDIS`` names a Redis (the queue is then
``BENCH_QUEUE``). They are built on first access; the harness builds its own client
instances per measure with :func:`make_huey`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from huey import Huey, RedisHuey, SqliteHuey
from huey.api import Result
from huey.storage import SqliteStorage

from benchmarks.marks import write_mark
from benchmarks.store_io import incr

NOOP = "bench.noop"
IO = "bench.io"
DIRECTORY_ENV = "BENCH_DIR"
#: Set to NORMAL for the ``huey-normal`` variant (see :class:`NormalSyncStorage`).
SYNCHRONOUS_ENV = "BENCH_HUEY_SYNCHRONOUS"
#: Set by the harness for ``huey-redis``: the Redis URL, and the queue (huey's name).
REDIS_ENV = "BENCH_HUEY_REDIS"
QUEUE_ENV = "BENCH_QUEUE"


class NormalSyncStorage(SqliteStorage):  # type: ignore[misc]  # huey has no type hints
    """huey's SQLite storage with ``synchronous=NORMAL``, as taskq-sqlite opens its file.

    huey leaves SQLite's default (FULL: an fsync per commit, WAL included) unless told
    ``fsync=False`` (OFF); NORMAL is the like-for-like setting for comparing with taskq.
    """

    def _create_connection(self) -> object:
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


def make_huey(
    directory: Path,
    store_results: bool,
    normal_sync: bool = False,
    redis_url: str | None = None,
    queue: str = "bench",
) -> tuple[Huey, dict[str, Callable[..., Result]]]:
    """A huey and its tasks by name (``bench.noop``, ``bench.io``): on ``directory``'s huey.db, or Redis."""
    options: dict[str, object] = {}
    if redis_url is not None:
        options["url"] = redis_url
    else:
        options["filename"] = str(directory / "huey.db")
    if normal_sync:
        options["storage_class"] = NormalSyncStorage
    kind = RedisHuey if redis_url is not None else SqliteHuey
    if store_results:
        instance: Huey = kind(queue, store_none=True, **options)
    else:
        instance = kind(f"{queue}-noresults", results=False, **options)

    @instance.task(name=NOOP)  # type: ignore[untyped-decorator]
    def noop(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    @instance.task(name=IO)  # type: ignore[untyped-decorator]
    def io(mark: str | None = None) -> None:
        incr()
        if mark is not None:
            write_mark(mark)

    return instance, {NOOP: noop, IO: io}


_instances: dict[str, Huey] = {}


def __getattr__(name: str) -> Huey:
    # Built on first access: SqliteHuey creates its file at once, and the harness imports
    # this module without wanting a huey.db in its working directory.
    if name not in ("huey", "huey_noresults"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _instances:
        directory = os.environ.get(DIRECTORY_ENV)
        if not directory:
            raise RuntimeError(f"set {DIRECTORY_ENV} to the directory of the benchmark's huey.db")
        normal_sync = os.environ.get(SYNCHRONOUS_ENV, "").upper() == "NORMAL"
        redis_url = os.environ.get(REDIS_ENV) or None
        queue = os.environ.get(QUEUE_ENV) or "bench"
        for attribute, store_results in (("huey", True), ("huey_noresults", False)):
            _instances[attribute] = make_huey(Path(directory), store_results, normal_sync, redis_url, queue)[0]
    return _instances[name]

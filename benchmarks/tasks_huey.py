"""The no-op tasks for huey: ``huey_consumer benchmarks.tasks_huey.huey`` (or ``.huey_noresults``).

``huey`` stores results, including ``None`` (``store_none=True``: huey skips storing a
``None`` return by default, which would make "results stored" store nothing and
``get()`` wait forever); ``huey_noresults`` is ``SqliteHuey(results=False)``. Both use
the SQLite file in the directory named by ``BENCH_DIR`` (set by the harness), on
first access; the harness builds its own client instances per measure with :func:`make_huey`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from huey import Huey, SqliteHuey
from huey.api import Result
from huey.storage import SqliteStorage

from benchmarks.marks import write_mark

NOOP = "bench.noop"
DIRECTORY_ENV = "BENCH_DIR"
#: Set to NORMAL for the ``huey-normal`` variant (see :class:`NormalSyncStorage`).
SYNCHRONOUS_ENV = "BENCH_HUEY_SYNCHRONOUS"


class NormalSyncStorage(SqliteStorage):
    """huey's SQLite storage with ``synchronous=NORMAL``, as taskq-sqlite opens its file.

    huey leaves SQLite's default (FULL: an fsync per commit, WAL included) unless told
    ``fsync=False`` (OFF); NORMAL is the like-for-like setting for comparing with taskq.
    """

    def _create_connection(self) -> object:
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


def make_huey(directory: Path, store_results: bool, normal_sync: bool = False) -> tuple[Huey, Callable[..., Result]]:
    """A huey on ``directory``'s huey.db and its no-op task, named ``bench.noop``."""
    filename = str(directory / "huey.db")
    options: dict[str, object] = {"filename": filename}
    if normal_sync:
        options["storage_class"] = NormalSyncStorage
    if store_results:
        instance: Huey = SqliteHuey("bench", store_none=True, **options)
    else:
        instance = SqliteHuey("bench-noresults", results=False, **options)

    @instance.task(name=NOOP)
    def noop(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    return instance, noop


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
        for attribute, store_results in (("huey", True), ("huey_noresults", False)):
            _instances[attribute] = make_huey(Path(directory), store_results, normal_sync)[0]
    return _instances[name]

"""The SQLite file: opened so several processes can share it, named from a URL, and its wake-up folder.

Both drivers open their connection here: WAL (readers never block the writer, and a
commit costs no fsync with ``synchronous=NORMAL``), a busy timeout instead of
"database is locked" errors, and autocommit (``isolation_level=None``) so that every
single statement is its own short transaction. Multi-statement writes say ``BEGIN
IMMEDIATE`` themselves, taking the write lock up front rather than failing half-way.

Waiters of both drivers announce their wake-up sockets (:mod:`taskq.drivers.support.wakeup`) in
:func:`signal_directory`, a folder of the temporary directory that belongs to the file.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable

from taskq.errors import ConfigError, TaskqError

# How long a statement waits for another process's write lock, in milliseconds.
BUSY_TIMEOUT_MS = 30_000
# Retries of the schema set-up when another process holds the file exclusively.
SETUP_ATTEMPTS = 50
# Pause between those retries, in seconds.
SETUP_RETRY_PAUSE = 0.05

SCHEME = "sqlite://"


def path_from_url(url: str) -> str:
    """The absolute file path named by ``sqlite:///relative.db`` or ``sqlite:////abs.db``."""
    if not url.startswith(SCHEME):
        raise ConfigError(f"not an SQLite URL: {url!r}; write sqlite:///relative/path.db or sqlite:////abs/path.db")
    rest = url[len(SCHEME) :].split("?", 1)[0]
    if not rest.startswith("/") or rest in ("/", "//"):
        raise ConfigError(
            f"the SQLite URL {url!r} names no file; write sqlite:///taskq.db (relative to the "
            f"current directory) or sqlite:////var/lib/taskq/taskq.db (absolute)"
        )
    return os.path.abspath(rest[1:])


def signal_directory(database_path: str) -> str:
    """Where the waiters of the database at ``database_path`` announce their wake-up sockets.

    A folder of :func:`tempfile.gettempdir` named from a hash of the file's real path, the
    same for every process whatever path it was given, private to this user. Processes
    sharing the file must therefore agree on ``TMPDIR``.
    """
    digest = hashlib.sha256(os.path.realpath(database_path).encode()).hexdigest()[:20]
    return os.path.join(tempfile.gettempdir(), f"taskq-sqlite-{os.getuid()}-{digest}")


def advice(path: str, exc: sqlite3.Error) -> str:
    """What went wrong opening ``path``, and what to check."""
    text = str(exc)
    if "not a database" in text or (isinstance(exc, sqlite3.DatabaseError) and "malformed" in text):
        return (
            f"{path} exists but is not an SQLite database ({text}); point the URL at a new "
            f"file or at a taskq database, or move that file away"
        )
    if "unable to open" in text or "readonly" in text:
        folder = os.path.dirname(path) or "."
        return (
            f"cannot open the SQLite database {path} ({text}); check that the directory {folder} "
            f"exists and that this user may create and write files in it (and in {path}-wal)"
        )
    if "locked" in text or "busy" in text:
        return (
            f"the SQLite database {path} stayed locked for {BUSY_TIMEOUT_MS / 1000:.0f}s ({text}); "
            f"is another program holding a long transaction on it?"
        )
    return f"SQLite error on {path}: {text}"


def connect(path: str, schema: str, error: type[TaskqError]) -> sqlite3.Connection:
    """Open ``path`` for sharing between processes and create ``schema`` if missing."""
    try:
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,  # one thread at a time, not always the one that opened it
            cached_statements=256,
        )
    except sqlite3.Error as exc:
        raise error(advice(path, exc)) from exc
    try:
        _retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
        conn.execute("PRAGMA synchronous=NORMAL")
        _retry_busy(lambda: conn.executescript(schema))
    except sqlite3.Error as exc:
        conn.close()
        raise error(advice(path, exc)) from exc
    return conn


def _retry_busy(step: Callable[[], object]) -> None:
    """Run ``step``, retrying while another process holds the file (first open races)."""
    for attempt in range(SETUP_ATTEMPTS):
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == SETUP_ATTEMPTS - 1:
                raise
            time.sleep(SETUP_RETRY_PAUSE)


__all__ = ["advice", "connect", "path_from_url", "signal_directory"]

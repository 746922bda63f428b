"""Core's default beat scheduler (``file``): state in a local SQLite file, one beat per file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from taskq.drivers.scheduler import EntryState, Scheduler
from taskq.errors import ConfigError, ScheduleLockedError

if TYPE_CHECKING:
    from taskq.app import App

#: Lock files this process holds. A process forked from it (a prefork pool's new child,
#: under ``worker -B``) closes its copies at once: otherwise the lock would outlive a beat
#: killed while that child still runs.
_HELD_LOCKS: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class FileScheduler(Scheduler):
    """The default scheduler: state in a local SQLite file, one beat at a time per file.

    The file is ``-s/--schedule`` or ``beat_schedule_filename``; a lock file beside it
    (``<file>.lock``, holding the pid) keeps a second beat from sending every task twice.
    """

    persistent = True
    exclusive = True

    def __init__(self, app: App, *, schedule_filename: str | os.PathLike[str] | None = None) -> None:
        super().__init__(app, schedule_filename=schedule_filename)
        self.path = Path(schedule_filename or cast(str, app.conf["beat_schedule_filename"]))
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    def open(self) -> None:
        import fcntl

        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the beat lock file {lock_path}: {exc}; choose a writable --schedule"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ScheduleLockedError(
                f"another beat (pid {holder}) is using the schedule file {self.path}; run one beat per "
                f"schedule, or give this one its own file with --schedule"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        _HELD_LOCKS.add(fd)
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute(
                "CREATE TABLE IF NOT EXISTS beat_entries (name TEXT PRIMARY KEY, last_run_at REAL NOT NULL, "
                "total_run_count INTEGER NOT NULL, schedule TEXT NOT NULL)"
            )
        except sqlite3.Error as exc:
            self.close()
            raise ConfigError(f"cannot use {self.path} as the beat schedule file: {exc}") from exc
        self._db = db

    def load_state(self) -> dict[str, EntryState]:
        assert self._db is not None, "open() first"
        rows = self._db.execute("SELECT name, last_run_at, total_run_count, schedule FROM beat_entries")
        return {
            name: EntryState(datetime.fromtimestamp(last, tz=UTC), count, schedule)
            for name, last, count, schedule in rows
        }

    def save_state(self, name: str, state: EntryState | None) -> None:
        assert self._db is not None, "open() first"
        if state is None:
            self._db.execute("DELETE FROM beat_entries WHERE name = ?", (name,))
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO beat_entries VALUES (?, ?, ?, ?)",
                (name, state.last_run_at.timestamp(), state.total_run_count, state.schedule),
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            _HELD_LOCKS.discard(self._lock_fd)
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None


__all__ = ["FileScheduler"]

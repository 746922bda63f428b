"""The bounded logs under the root, a folder each: one file per batch, named by the position of its first entry.

The shared rules (JSON lines, the bound, wake-ups) are :mod:`taskq.drivers.support.eventlog`'s;
here is where they live in the directory:

* ``events/`` (:data:`EVENTS`) holds the event log, the cluster's events; ``mailbox/``
  (:data:`MAILBOX`) holds remote control's requests and replies
  (:mod:`taskq.drivers.support.mailbox`). Each log keeps its own bound
  (:attr:`~taskq.drivers.support.eventlog.BoundedLog.kept`) and wakes only its own
  readers, so a worker listening for requests never reads task events. What follows
  says "events" for the entries of either;
* ``events/<position, 20 digits>.jsonl`` holds one batch, one event per line; its events
  take the positions from the one in its name on, one per line, so the batch after it
  starts at ``position + lines``. Names sort by position, and ``cat events/*`` is the log;
* a batch is written whole to ``tmp/`` and **hard-linked** into ``events/``: ``link``,
  unlike ``rename``, fails when the name exists, so of several processes taking one
  position exactly one wins, and the file appears complete. The others read the
  winner's line count and try the position after it; so a position is taken only when
  the batch before it is in place, and the log has no holes a reader could step over.
  A sender remembers where its last batch ended, and lists the folder when it has
  no idea, when that batch is gone, or when it fell :data:`PROBES_BEFORE_LISTING`
  batches behind;
* the sender whose batch crosses a multiple of
  :data:`~taskq.drivers.support.eventlog.TRIM_EVERY` lists the folder and deletes the
  oldest files whose events all lie before the log's bound;
* a reader keeps the position it expects next and opens that file by name. When there is
  none, it checks that the file it read last is still there (then nothing is new);
  otherwise the log was trimmed past it: it lists the folder and goes on from the oldest
  file after its position, counting what it missed;
* a log starts at position 1 in an empty folder. Removing its files under running
  processes is not supported, but they recover: a sender whose last batch is gone looks
  where the log is, and a reader whose last file is gone and finds only files before its
  position follows the new log from its oldest file, with a warning. A reader whose last
  file name the new log has taken again waits until the new log passes its position.

Lock-free, and safe with several processes of one machine; needs a file system with hard
links (any POSIX one).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
from collections.abc import Collection

from taskq.drivers.support.eventlog import EVENT_LOG, BoundedLog, LogEventReader, crosses_trim_mark
from taskq_filesystem import _layout

logger = logging.getLogger(__name__)

# The logs' folders under the root.
EVENTS = "events"
MAILBOX = "mailbox"
# Digits of the position that names a batch file.
POSITION_DIGITS = 20
SUFFIX = ".jsonl"
# Positions taken by other senders' batches that a sender steps over one by one before it
# lists the folder to find the end of the log.
PROBES_BEFORE_LISTING = 8
# Attempts at a free position before a send gives up (a folder another program keeps filling).
MOST_ATTEMPTS = 1_000
# Most events one read hands over, in multiples of the log's bound; the rest come with the next read, at once.
READ_LIMIT_BOUNDS = 2


def file_name(position: int) -> str:
    return f"{position:0{POSITION_DIGITS}d}{SUFFIX}"


def position_of(name: str) -> int | None:
    """The position a batch file's name gives, or None for any other file."""
    digits = name[:POSITION_DIGITS]
    if len(name) != POSITION_DIGITS + len(SUFFIX) or not name.endswith(SUFFIX):
        return None
    if not (digits.isascii() and digits.isdigit()):
        return None
    return int(digits)


def lines_of(data: bytes) -> list[bytes]:
    """The lines of a batch file, each an event; a missing newline at the end is forgiven."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def size_of(data: bytes) -> int:
    """How many positions a batch file takes: one per line, at least one (an empty file)."""
    return max(1, len(lines_of(data)))


class LogFiles:
    """The sending side of the log (``log``) in ``folder``: appends batches, trims. One per transport instance."""

    def __init__(self, folder: str, tmp_folder: str, log: BoundedLog = EVENT_LOG) -> None:
        self.folder = folder
        self.tmp_folder = tmp_folder
        self.log = log
        self._next = 0  # where this instance's last batch ended; 0: unknown, list the folder
        self._previous = ""  # the file of that batch: while it is there, the log goes on from it

    def append(self, data: bytes, count: int) -> int:
        """Write a batch of ``count`` events (``data``, one per line); return the position of its first."""
        temporary = os.path.join(self.tmp_folder, f"{os.getpid()}-{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        try:
            first = self._place(temporary)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        last = first + count - 1
        self._next, self._previous = last + 1, os.path.join(self.folder, file_name(first))
        if crosses_trim_mark(first, last):
            self._trim(last)
        return first

    def _place(self, temporary: str) -> int:
        """Link ``temporary`` into the folder at the first free position after the log's end."""
        # its own last batch gone: trimmed (far behind) or removed (a new log): look where the log is
        position = self._next if self._next and os.path.lexists(self._previous) else self._end()
        for attempt in range(1, MOST_ATTEMPTS + 1):
            target = os.path.join(self.folder, file_name(position))
            try:
                os.link(temporary, target)
            except FileExistsError:
                pass
            else:
                return position
            if attempt % PROBES_BEFORE_LISTING == 0:
                position = max(position + 1, self._end())
                continue
            try:
                position += size_of(_layout.read_file(target))
            except FileNotFoundError:  # trimmed meanwhile: this instance is far behind
                position = max(position + 1, self._end())
            except OSError:  # a directory, a file this user may not read: it takes one position
                position += 1
        raise OSError(f"found no free position in the {self.log.title} {self.folder} after {MOST_ATTEMPTS} attempts")

    def _end(self) -> int:
        """The position after the newest batch in the folder (1 when there is none)."""
        newest = max(_positions(self.folder), default=None)
        if newest is None:
            return 1
        try:
            return newest + size_of(_layout.read_file(os.path.join(self.folder, file_name(newest))))
        except OSError:
            return newest + 1

    def _trim(self, last: int) -> None:
        """Delete the oldest batches whose events all lie before the log's bound, counted back from ``last``."""
        cutoff = last - self.log.kept  # positions up to here go
        positions = sorted(_positions(self.folder))
        for current, following in itertools.pairwise(positions):
            if following - 1 > cutoff:
                break
            with contextlib.suppress(FileNotFoundError):  # another sender trims too
                os.unlink(os.path.join(self.folder, file_name(current)))


class FilesystemLogReader(LogEventReader):
    """Follows the batch files of the log (``log``) in ``folder`` from the event sent last when it was made."""

    def __init__(
        self, folder: str, wake_directory: str, log: BoundedLog = EVENT_LOG, groups: Collection[str] | None = None
    ) -> None:
        super().__init__(wake_directory, log=log, groups=groups)
        self.folder = folder
        self.where = f"the {log.title} {folder}"
        self._last: str | None = None  # the batch file read last (the newest, at first)
        self._next = self._start()

    def _start(self) -> int:
        newest = max(_positions(self.folder), default=None)
        if newest is None:
            return 1
        path = os.path.join(self.folder, file_name(newest))
        self._last = path
        try:
            return newest + size_of(_layout.read_file(path))
        except OSError:
            return newest + 1

    def fetch(self) -> list[tuple[str, str | bytes]]:
        found: list[tuple[str, str | bytes]] = []
        while len(found) < READ_LIMIT_BOUNDS * self.log.kept:
            name = file_name(self._next)
            path = os.path.join(self.folder, name)
            try:
                data = _layout.read_file(path)
            except FileNotFoundError:
                if self._skip_to_oldest_left():
                    continue
                break
            except OSError as exc:
                logger.warning(
                    "skipped the event file %s: it cannot be read (%s)", path, exc.strerror or type(exc).__name__
                )
                data = b""
            else:
                found.extend((f"{name} line {number}", line) for number, line in enumerate(lines_of(data), 1))
            self._next += size_of(data)
            self._last = path
        return found

    def _skip_to_oldest_left(self) -> bool:
        """When the expected file is missing: whether the log went on elsewhere (and the position moved there)."""
        if self._last is not None and os.path.lexists(self._last):
            return False  # the file before is still there, so nothing was trimmed: nothing new yet
        positions = sorted(_positions(self.folder))
        later = [position for position in positions if position >= self._next]
        if later:
            if later[0] > self._next:
                self.missed(later[0] - self._next)
            self._next = later[0]
            return True
        if positions and self._last is not None:
            logger.warning("%s started again (its files were removed?); following it from its oldest event", self.where)
            self._next, self._last = positions[0], None
            return True
        return False


def _positions(folder: str) -> list[int]:
    """The positions of the batch files in ``folder``."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [position for position in map(position_of, names) if position is not None]


__all__ = [
    "EVENTS",
    "MAILBOX",
    "FilesystemLogReader",
    "LogFiles",
    "file_name",
    "lines_of",
    "position_of",
    "size_of",
]

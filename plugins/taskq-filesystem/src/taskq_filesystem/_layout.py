"""Where things live under the root directory, how URLs name it, and atomic file writes.

``file:///var/lib/taskq`` names an absolute directory (three slashes: the scheme's two
and the path's own); ``file://taskq-data`` names one relative to the current directory
of each process; ``file://~/taskq`` starts at the home directory. ``filesystem://`` is an
alias, and ``filesystem://`` with no path takes the directory from the
``data_folder`` option (or Celery's ``data_folder_in``). Under the root::

    queues/<queue>/waiting/   messages waiting for a claimer, delayed ones included
    queues/<queue>/claimed/   messages under a lease; their mtime is the lease deadline
    queues/<queue>/dead/      dead letters, with their reason
    results/                  one file per result key
    events/                   the event log: one file per batch of events (see _logs.py)
    mailbox/                  remote control's requests and replies: one file per batch (see _logs.py)
    broadcast/<exchange>/     one file per worker subscribed to a broadcast queue (see transport.py)
    tmp/                      files being written, renamed into place when complete
    wake/                     one empty file per waiting process: where to send wake-ups

Every file appears in its place whole, by ``os.rename`` of a complete file from ``tmp/``
(same file system, so the rename is atomic), and every move between ``waiting/`` and
``claimed/`` is a rename too: of several processes renaming one file, exactly one wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Mapping
from urllib.parse import quote

from taskq.errors import ConfigError, TaskqError

SCHEMES = ("file://", "filesystem://")
# Temporary files older than this many seconds were left by a crashed writer.
STALE_TMP_SECONDS = 3600.0
# Longest file name used for a queue or a key; longer ones are shortened with a hash.
MAX_NAME = 180


def root_from_url(url: str, options: Mapping[str, object] | None = None) -> str:
    """The absolute root directory named by ``url`` (or, for ``filesystem://``, its options)."""
    scheme = next((s for s in SCHEMES if url.startswith(s)), None)
    if scheme is None:
        raise ConfigError(f"not a filesystem URL: {url!r}; write file:///absolute/dir or file://relative/dir")
    rest = url[len(scheme) :].split("?", 1)[0]
    if not rest and scheme == "filesystem://" and options:
        folder_in = options.get("data_folder") or options.get("data_folder_in")
        folder_out = options.get("data_folder_out")
        if folder_out and folder_in and folder_out != folder_in:
            raise ConfigError(
                f"data_folder_in ({folder_in}) and data_folder_out ({folder_out}) differ; taskq keeps a "
                f"queue in one directory: set broker_transport_options = {{data_folder = {str(folder_in)!r}}}"
            )
        rest = str(folder_in or folder_out or "")
    if not rest or rest == "/":
        raise ConfigError(
            f"the URL {url!r} names no directory; write file:///var/lib/taskq (absolute) or "
            f"file://taskq-data (relative to the current directory)"
        )
    return os.path.abspath(os.path.expanduser(rest))


def file_name(name: str) -> str:
    """A safe file name for a queue name or a result key: quoted, never hidden, never too long."""
    quoted = quote(name, safe="")  # keeps letters, digits and "_.-~"; "/" becomes %2F
    if quoted.startswith("."):
        quoted = "%2E" + quoted[1:]
    if not quoted:
        quoted = "%00empty"
    if len(quoted) > MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        quoted = f"{quoted[: MAX_NAME - 40]}~{digest}"
    return quoted


def advice(path: str, exc: OSError, role: str) -> str:
    """What went wrong using ``path`` as the ``role`` directory, and what to check."""
    reason = exc.strerror or str(exc)
    parent = os.path.dirname(path.rstrip("/")) or "/"
    return (
        f"cannot use {path} as the taskq {role} directory ({reason}: {exc.filename or path}); "
        f"check that {parent} exists, that no regular file sits where a directory should be, and "
        f"that this user may create and write files there"
    )


def make_directories(root: str, names: tuple[str, ...], error: type[TaskqError], role: str) -> None:
    """Create ``root`` and its ``names``, and prove it is writable; raise ``error`` with advice."""
    try:
        for name in names:
            os.makedirs(os.path.join(root, name), exist_ok=True)
        probe = os.path.join(root, "tmp", f"probe-{os.getpid()}-{secrets.token_hex(4)}")
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise error(advice(root, exc, role)) from exc
    _remove_stale_temporary_files(os.path.join(root, "tmp"))


def _remove_stale_temporary_files(folder: str) -> None:
    cutoff = time.time() - STALE_TMP_SECONDS
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)


def write_atomically(tmp_folder: str, target: str, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``target`` so that readers see either nothing or all of it."""
    temporary = os.path.join(tmp_folder, f"{os.getpid()}-{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if fsync:  # the rename itself lives in the directory: flush that too
        folder = os.open(os.path.dirname(target), os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def read_file(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


__all__ = ["SCHEMES", "advice", "file_name", "make_directories", "read_file", "root_from_url", "write_atomically"]

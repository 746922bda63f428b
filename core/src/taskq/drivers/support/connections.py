"""Helpers for drivers that hold connections: URLs masked for logs, the pid checked cheaply after a fork, the fork gate.

After ``fork()`` a child has copies of every socket, database handle and lock of its
parent, but only the forking thread. A driver therefore

* checks :func:`current_pid` against the pid it recorded when it connected, on every
  use, and in a child opens connections of its own, leaving the parent's untouched
  (never closing or writing to them: they are the parent's; hand them to
  :func:`keep_inherited`), and replaces its own locks, which another thread of the
  parent may have held at the fork;
* runs every call into a library that keeps process-wide state (SQLite's file locks and
  mutexes) inside :data:`fork_gate`, so that no fork happens halfway through one: a
  child would inherit that state "held" by a thread it does not have, and wait for it
  forever, or for the busy timeout ("database is locked").
"""

from __future__ import annotations

import logging  # noqa: F401 - imported first, see the register_at_fork call below
import os
import re
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

_pid = os.getpid()
T = TypeVar("T")


class ForkGate:
    """Holds ``fork()`` off while any thread is inside a ``with fork_gate:`` block.

    Entering and leaving cost an uncontended lock each (about a microsecond in all). A
    fork waits until every thread has left its block; meanwhile new entries wait for the
    fork, so a busy process cannot starve it. The child starts with an open gate and no thread inside. A thread may nest
    blocks. Take the gate *before* any lock of your own that the block holds, so that no
    such lock is held when the process forks (a child would inherit it locked).
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._inside = 0  # threads inside a block
        self._forking = False
        self._depth = threading.local()  # .value: this thread's nesting depth

    def __enter__(self) -> None:
        depth = getattr(self._depth, "value", 0)
        self._depth.value = depth + 1
        if depth:
            return
        with self._lock:
            while self._forking:
                self._changed.wait()
            self._inside += 1

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        depth = self._depth.value - 1
        self._depth.value = depth
        if depth:
            return
        with self._lock:
            self._inside -= 1
            if self._forking:  # only a fork waits for the count to fall
                self._changed.notify_all()

    def before_fork(self) -> None:
        """Wait until no other thread is inside, and keep everyone out until the fork is done."""
        self._lock.acquire()
        self._forking = True
        mine = 1 if getattr(self._depth, "value", 0) else 0  # a block of the forking thread itself
        while self._inside > mine:
            self._changed.wait()

    def after_fork_in_parent(self) -> None:
        self._forking = False
        self._changed.notify_all()  # the threads waiting to enter
        self._lock.release()

    def after_fork_in_child(self) -> None:
        depth = getattr(self._depth, "value", 0)
        self._reset()
        if depth:  # the forking thread was inside a block: it still is, and leaves it normally
            self._depth.value = depth
            self._inside = 1


fork_gate = ForkGate()
"""The process's one fork gate; see :class:`ForkGate`."""


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()
    fork_gate.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    # Before-fork handlers run in reverse order of registration: logging's (registered when it
    # was imported, above) runs after the gate is closed, so a thread inside a block may still log.
    os.register_at_fork(
        before=fork_gate.before_fork, after_in_parent=fork_gate.after_fork_in_parent, after_in_child=_after_fork
    )


def current_pid() -> int:
    """This process's id, kept up to date across forks without a system call per ask.

    Drivers compare it with the id they recorded at connect time, on every command, to
    notice that they run in a forked child and must open connections of their own.
    """
    return _pid


def keep_inherited(*inherited: object) -> None:
    """Keep objects a forked child inherited from its parent (connections, sockets) alive, unused, for good.

    Closing the child's copy of a connection can disturb the parent's: a client library's
    close says goodbye on the shared socket (AMQP ``connection.close``, a TLS
    ``close_notify``), SQLite's runs its unlock and checkpoint on state the parent still
    uses. Dropping the last reference would run that same close from a finalizer. Hand
    the parent's objects here instead; they cost their memory and file descriptors,
    once per fork.
    """
    _INHERITED.extend(item for item in inherited if item is not None)


# What keep_inherited() keeps: never used, never closed.
_INHERITED: list[object] = []


class PerProcess(Generic[T]):
    """A client made by ``factory`` on first use in each process: a forked child makes its own.

    For a library client that owns sockets or threads (a boto3 client and its connection
    pool, a thread pool executor): :meth:`get` returns this process's, and in a forked
    child hands the parent's to :func:`keep_inherited` and makes a new one.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._lock_pid = current_pid()

    def get(self) -> T:
        """This process's client, made now if it has none."""
        value, pid = self._value, current_pid()
        if value is not None and self._pid == pid:
            return value
        if self._lock_pid != pid:  # another thread of the parent may have held it at the fork
            self._lock, self._lock_pid = threading.Lock(), pid
        with self._lock:
            if self._value is None or self._pid != pid:
                keep_inherited(self._value)
                self._value = self._factory()
                self._pid = pid
            return self._value

    def close(self, closer: Callable[[T], object]) -> None:
        """Call ``closer`` on this process's client, if it made one; the next :meth:`get` makes a new one."""
        value, self._value = self._value, None
        if value is not None and self._pid == current_pid():
            closer(value)
        else:
            keep_inherited(value)


#: Where a URL's authority starts: a scheme and ``://``. A URL may hold several
#: (``sentinel://:pw@h1;sentinel://:pw@h2``), and each has its own user part.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
#: Query parameters whose value is a credential: ``?password=``, ``?token=``, ``?access_key=``...
_SECRET_PARAM = re.compile(
    r"([?&;])([^=&;#?]*(?:pass|pwd|secret|token|credential|signature|auth|key|key_?id|sas)[^=&;#?]*)=([^&;#]*)",
    re.IGNORECASE,
)
#: Schemes whose user name is an access key (``dynamodb://KEY_ID:SECRET@region``): masked too.
#: Matched as parts of the scheme, so that a misspelt ``dynamo://`` is masked as well.
_KEY_SCHEMES = ("dynamo", "s3", "sqs", "aws")
#: An AWS access key id, masked wherever it stands as a URL's user (a misspelt scheme too).
_ACCESS_KEY = re.compile(r"(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}")
MASK = "****"


def mask_url(url: str) -> str:
    """``url`` with every password, access key and secret replaced by ``****``, safe to log.

    Masks the user part of each host of a multi-host URL (``;`` or ``,`` between them),
    the whole user part where it is an access key (``dynamodb://``, ``s3://``, ``sqs://``)
    or a token alone (``https://TOKEN@host``), and query parameters that carry a
    credential (``?password=``, ``?token=``, ``?aws_secret_access_key=``...). A password
    written unencoded with ``@``, ``;``, ``,`` or ``/`` in it is still masked whole.
    """
    if not isinstance(url, str):
        url = str(url)
    starts = list(_SCHEME.finditer(url))
    if not starts:  # not a URL (a mistake, quoted in an error): hide anything before an "@"
        at = url.rfind("@")
        return _mask_query(url if at < 0 else MASK + url[at:])
    out = [url[: starts[0].start()]]
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(url)
        scheme = match.group()[:-3].lower()
        out.append(match.group())
        out.append(_mask_authority(url[match.end() : end], any(name in scheme for name in _KEY_SCHEMES)))
    return "".join(out)


def _mask_authority(rest: str, user_is_key: bool) -> str:
    """One host's part of a URL (all after ``scheme://``), its user part and secret parameters masked."""
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, cut)
    if at < 0:
        # A password holding an unencoded "/" ends the authority early: take the first "@"
        # before any query as the end of the user part.
        first = rest.find("@")
        query = rest.find("?")
        if first > 0 and not rest.startswith("/") and (query < 0 or first < query):
            at = first
    if at < 0:
        return _mask_query(rest)
    userinfo, tail = rest[:at], rest[at:]
    user, colon, _ = userinfo.partition(":")
    user_is_key = user_is_key or _ACCESS_KEY.fullmatch(user) is not None
    if colon and not user_is_key:
        masked = f"{user}:{MASK}"
    elif colon:
        masked = f"{MASK if user else ''}:{MASK}"
    else:
        masked = MASK if userinfo else ""
    return masked + _mask_query(tail)


def _mask_query(text: str) -> str:
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}", text)


#: A URL in free text (a log line): a scheme, ``://`` and everything up to a space or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
#: Credentials libraries print in their own debug logs: SigV4's ``Credential=KEYID/...``,
#: an ``Authorization`` header's value, and access key ids on their own.
_CREDENTIALS_IN_TEXT = (
    (re.compile(r"(Credential=)[^/,\s'\"]+"), r"\1" + MASK),
    (re.compile(r"""((?:'|")?Authorization(?:'|")?\s*[:=]\s*b?(?:'|")?)[^'"\r\n]+""", re.IGNORECASE), r"\1" + MASK),
    (re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b"), MASK),
)

#: What every pattern above needs in the text (a superset): a line without it has nothing to mask.
_MAYBE_SECRET = re.compile(r"://|Credential=|Authorization|AKIA|ASIA|AIDA|AROA", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` (a log line, an error) with every URL masked and other credentials removed.

    The worker's log formatter runs every line through it, so that a library's own debug
    logging (botocore prints its signed requests) shows no credential either.
    """
    if _MAYBE_SECRET.search(text) is None:  # most lines (a task received, succeeded): one quick scan
        return text
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group()), text)
    for pattern, replacement in _CREDENTIALS_IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


__all__ = ["ForkGate", "PerProcess", "current_pid", "fork_gate", "keep_inherited", "mask_url", "redact"]

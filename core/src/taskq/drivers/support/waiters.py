"""Push wake-ups for a result backend whose store cannot push: one waiter per waiting thread.

A backend on a store that several processes share but that cannot tell a reader of a
change (an SQLite file, a directory tree) keeps one :class:`ResultWaiters`::

    def setup(self) -> None:
        self._waiters = ResultWaiters(wake_directory)

    def on_stored(self, task_id: str, state: str) -> None:
        self._waiters.notify()

    def wait_for_change(self, task_ids: Sequence[str], timeout: float) -> None:
        self._waiters.wait(timeout)

Each thread that waits gets a :class:`~taskq.drivers.support.wakeup.Waiter` of its own
(one socket cannot be shared between blocking threads); writers send through one
:class:`~taskq.drivers.support.wakeup.Notifier`. In a forked child, the first call closes
the copies of the parent's sockets (the parent's announcements stay: they are the
parent's) and starts afresh.
"""

from __future__ import annotations

import threading

from taskq.drivers.support import wakeup
from taskq.drivers.support.connections import current_pid, fork_gate


class ResultWaiters:
    """The result wake-ups of one backend instance, announced in ``directory``; safe to share between threads.

    ``owns_directory``: the waiters create ``directory`` when missing and remove it when
    the last one closes (for a directory outside the store; see :class:`~taskq.drivers.support.wakeup.Waiter`).
    """

    def __init__(self, directory: str, *, owns_directory: bool = False) -> None:
        self.directory = directory
        self.owns_directory = owns_directory
        self._lock = threading.Lock()
        self._pid = current_pid()
        self._notifier = wakeup.Notifier(directory, wakeup.RESULT_KIND)
        self._local = threading.local()  # .waiter: this thread's Waiter
        self._waiters: list[wakeup.Waiter] = []

    def notify(self) -> None:
        """Wake every thread, in any process, waiting on this store; call after the result is visible."""
        with fork_gate, self._lock:  # the gate first: no fork while the lock is held
            self._forget_parent()
            self._notifier.notify()

    def wait(self, timeout: float) -> None:
        """Block this thread until a result may have been stored, at most ``timeout`` seconds.

        A thread's first call only announces its waiter and returns at once: a result stored
        before the socket existed sent it nothing, so the caller must look again.
        """
        waiter: wakeup.Waiter | None = getattr(self._local, "waiter", None)
        if waiter is None or waiter.pid != current_pid():
            with fork_gate, self._lock:
                self._forget_parent()
                waiter = wakeup.Waiter(self.directory, wakeup.RESULT_KIND, owns_directory=self.owns_directory)
                self._local.waiter = waiter
                self._waiters.append(waiter)
            return
        # no drain first: a wake-up that came after the caller's read must end this wait
        waiter.block(timeout)

    def close(self) -> None:
        """Withdraw this instance's waiters and close its sockets; a later call starts afresh."""
        with fork_gate, self._lock:
            self._close_all()

    def _forget_parent(self) -> None:
        """In a forked child, drop the parent's sockets (call with the lock held)."""
        if self._pid != current_pid():
            self._close_all()
            self._pid = current_pid()

    def _close_all(self) -> None:
        for waiter in self._waiters:
            waiter.close()  # in a forked child this closes only our copy
        self._waiters = []
        self._local = threading.local()
        self._notifier.close()
        self._notifier = wakeup.Notifier(self.directory, wakeup.RESULT_KIND)


__all__ = ["ResultWaiters"]

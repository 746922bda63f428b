"""Who takes the prefork parent's turns: the worker's own thread while it polls, else a supervisor thread.

A *turn* waits on the children's pipes (and a wake-up pipe) and acts on what came:
outcomes, exits, deadlines. Exactly one thread takes turns at a time, the holder of the
reader lock:

* while the worker is busy it takes the turns itself, in :meth:`Turns.poll`, so a child's
  outcome reaches it without a hop between threads (the supervisor steps aside);
* while the worker waits on the broker (after :meth:`Turns.release`), the supervisor
  thread takes them;
* a worker that stopped polling without releasing (it waits on a broker that is away,
  say) must not leave hard limits and dead children unattended: after :data:`STALL`
  seconds the supervisor stands in.

:meth:`Turns.wake` ends the current turn early (a job to send, a deadline to arm, a stop);
it is a pipe write, so it is safe from a signal handler.

Private: nothing outside taskq-prefork imports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

from taskq_prefork._records import close_fd, drain

logger = logging.getLogger(__name__)

# Longest the supervisor sleeps with nothing due, in seconds (a safety net; it is woken).
IDLE_WAKE = 5.0
# Seconds without a turn from an attached caller before the supervisor takes one itself.
STALL = 1.0


class Turns:
    """The reader lock, the hand-over between the worker and the supervisor, and the wake-up pipe."""

    def __init__(self, turn: Callable[[float], None], is_closing: Callable[[], bool]) -> None:
        self._turn = turn  # one turn, waiting up to the given seconds
        self._is_closing = is_closing
        self._reader = threading.Lock()
        self._handover = threading.Condition(threading.Lock())
        self._attached = False
        self._last_turn = 0.0  # when a turn last began (monotonic)
        self._supervisor: threading.Thread | None = None
        #: The wake-up pipe's reading end, for the pool's selector; -1 until :meth:`open`.
        self.wake_fd = -1
        self._wake_w = -1

    def open(self) -> tuple[int, int]:
        """Make the wake-up pipe; return both ends (a forked child closes them)."""
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)
        return self.wake_fd, self._wake_w

    def start_supervisor(self) -> None:
        self._supervisor = threading.Thread(target=self._supervise, name="taskq-prefork", daemon=True)
        self._supervisor.start()

    def wake(self) -> None:
        """End the current turn now."""
        with contextlib.suppress(OSError):  # the pipe is full (a wake-up is pending anyway) or closed (stopping)
            os.write(self._wake_w, b"\0")

    def woken(self) -> None:
        """In a turn: the wake-up pipe was readable; empty it."""
        drain(self.wake_fd)

    def take(self, timeout: float) -> None:
        """Run one turn (the caller holds the reader lock)."""
        self._last_turn = time.monotonic()
        self._turn(timeout)

    def poll(self, timeout: float) -> bool:
        """Take a turn in the caller's thread; False (at once) when the pool is closing."""
        if not self._attached:
            with self._handover:
                self._attached = True
            self.wake()  # the supervisor ends its turn and steps aside
        if not self._reader.acquire(blocking=False):
            self.wake()  # the supervisor stood in for a stalled caller: end its turn
            self._reader.acquire()
        try:
            if self._is_closing():
                return False
            self.take(timeout)
        finally:
            self._reader.release()
        return True

    def release(self) -> None:
        """The caller stops polling: the supervisor takes the turns."""
        if self._attached:
            with self._handover:
                self._attached = False
                self._handover.notify_all()

    def stop(self, timeout: float) -> None:
        """Once the pool is closing: let the supervisor leave, and wait up to ``timeout`` for it."""
        self.release()
        self.wake()
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout)
            if supervisor.is_alive():
                logger.error("prefork pool: the supervisor thread is stuck (in a callback?); stopping without it")

    def close(self) -> None:
        """Close the wake-up pipe."""
        for fd in (self.wake_fd, self._wake_w):
            close_fd(fd)
        self.wake_fd = self._wake_w = -1

    def _supervise(self) -> None:
        closing = self._is_closing
        while not closing():
            stand_in = False
            with self._handover:
                while self._attached and not closing():
                    if time.monotonic() - self._last_turn >= STALL:
                        stand_in = True  # see the module docstring
                        break
                    self._handover.wait(STALL)
            with self._reader:
                if closing() or (self._attached and not stand_in):
                    continue
                self.take(STALL if stand_in else IDLE_WAKE)


__all__ = ["IDLE_WAKE", "STALL", "Turns"]

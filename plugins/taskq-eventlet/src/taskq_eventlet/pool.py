"""The eventlet pool: each task runs in its own green thread, hundreds or thousands at once.

:class:`EventletPool` is a :class:`taskq.drivers.support.greenpool.GreenPool`, which holds all it shares
with the gevent pool: which hub runs the green threads, time limits, terminate and stop
(see there). This module gives it eventlet's primitives:

* ``taskq worker --pool=eventlet`` patches with ``eventlet.monkey_patch()`` (the plugin's
  ``taskq_early_init`` hook), and the pool then runs on the hub of the worker's main thread.
* Unpatched, the pool's own hub thread has a hub of its own. eventlet has no thread-safe
  "call soon", so other threads queue a call and write one byte to a pipe the hub thread
  listens on; it schedules the queued calls on its hub.
* Time limits are the hub's timers (what ``eventlet.Timeout`` uses); tasks are greenlets
  whose parent is the hub.
* In a worker, the pool calls the ``taskq_eventlet_pool_*`` hooks (Celery's
  ``eventlet_pool_*`` signals) through the worker's plugin manager: as it starts, before
  it stops and after, and as it is handed each task.

eventlet warns on import that it is deprecated (it is in maintenance mode upstream);
the warning is eventlet's and is left visible.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import eventlet.hubs
import eventlet.patcher
import greenlet

from taskq.drivers.pool import Job
from taskq.drivers.support.greenpool import STOP_TIMEOUT, GreenPool

_real_thread = eventlet.patcher.original("_thread")


def is_patched() -> bool:
    """Whether eventlet patched what a worker's main thread blocks on (``monkey_patch()`` does)."""
    return all(eventlet.patcher.is_monkey_patched(name) for name in ("thread", "select", "time", "socket"))


class EventletPool(GreenPool):
    """Runs up to ``concurrency`` tasks as green threads; see the module docstring."""

    library = "eventlet"

    _hub: Any  # eventlet's hub (untyped), bound by _bind_hub

    _is_patched = staticmethod(is_patched)
    _os_thread_ident = staticmethod(cast("Callable[[], int]", _real_thread.get_ident))
    _allocate_lock = staticmethod(cast("Callable[[], threading.Lock]", _real_thread.allocate_lock))

    def __init__(self, concurrency: int = 1, **options: object) -> None:
        super().__init__(concurrency, **options)
        self._inbox: deque[tuple[Callable[..., object], tuple[object, ...]]] = deque()
        self._wake_read = self._wake_write = -1
        self._quit = False

    # ---- The hooks: around GreenPool's life cycle ------------------------------------------

    def start(self) -> None:
        super().start()
        plugins = self.plugins
        if plugins is not None and plugins.has_impl("taskq_eventlet_pool_started"):
            plugins.eventlet_pool_started(self)

    def stop(self, *, wait: bool = True) -> None:
        # A cold stop stops the pool twice (the consumer at once, then the pool's step): tell once.
        plugins = self.plugins if self._hub_ident is not None else None
        if plugins is not None and plugins.has_impl("taskq_eventlet_pool_stopping"):
            plugins.eventlet_pool_stopping(self)
        super().stop(wait=wait)
        if plugins is not None and plugins.has_impl("taskq_eventlet_pool_stopped"):
            plugins.eventlet_pool_stopped(self)

    def submit(self, job: Job) -> None:
        plugins = self.plugins
        if plugins is not None and plugins.has_impl("taskq_eventlet_pool_apply"):
            plugins.eventlet_pool_apply(self, job.target, job.args)
        super().submit(job)

    # ---- What the library supplies ------------------------------------------------------

    def _spawn(self, function: Callable[..., object], *args: object) -> greenlet.greenlet:
        green = greenlet.greenlet(function, self._hub.greenlet)
        self._hub.schedule_call_global(0, green.switch, *args)
        return green

    def _call_soon(self, function: Callable[..., object], *args: object) -> None:
        self._hub.schedule_call_global(0, function, *args)

    def _call_soon_threadsafe(self, function: Callable[..., object], *args: object) -> None:
        self._inbox.append((function, args))
        with contextlib.suppress(BlockingIOError, OSError):  # full: the hub thread is awake already
            os.write(self._wake_write, b"!")

    def _call_later(self, seconds: float, function: Callable[..., object], *args: object) -> Callable[[], object]:
        cancel: Callable[[], object] = self._hub.schedule_call_global(seconds, function, *args).cancel
        return cancel

    def _bind_hub(self) -> None:
        self._hub = eventlet.hubs.get_hub()

    def _run_hub(self, ready: threading.Event) -> None:
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        ready.set()
        hub = self._hub
        while not self._quit:
            eventlet.hubs.trampoline(self._wake_read, read=True)
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_read, 4096):
                    pass
            while self._inbox:
                function, args = self._inbox.popleft()
                hub.schedule_call_global(0, function, *args)  # runs in the hub greenlet
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _quit_hub(self) -> None:
        self._quit = True
        self._call_in_hub(lambda: None)  # wake the hub thread's loop so it sees _quit


__all__ = ["STOP_TIMEOUT", "EventletPool", "is_patched"]

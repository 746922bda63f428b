"""The gevent pool: each task runs in its own greenlet, hundreds or thousands at once.

:class:`GeventPool` is a :class:`taskq.drivers.support.greenpool.GreenPool`, which holds all it shares with
the eventlet pool: which hub runs the greenlets, time limits, terminate and stop (see
there). This module gives it gevent's primitives:

* ``taskq worker --pool=gevent`` patches with ``gevent.monkey.patch_all()`` (the plugin's
  ``taskq_early_init`` hook), and the pool then runs on the hub of the worker's main thread.
* Unpatched, the pool's own hub thread runs the hub's loop, kept running while idle by an
  ``async`` watcher; other threads hand it work with ``loop.run_callback_threadsafe``.
* Time limits are the loop's timers; tasks are :class:`gevent.Greenlet`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import cast

import gevent
import gevent.event
import gevent.hub
from gevent import monkey

from taskq.drivers.support.greenpool import STOP_TIMEOUT, GreenPool


def is_patched() -> bool:
    """Whether gevent patched what a worker's main thread blocks on (``patch_all`` does)."""
    return all(monkey.is_module_patched(name) for name in ("threading", "select", "time", "socket"))


class GeventPool(GreenPool):
    """Runs up to ``concurrency`` tasks as greenlets; see the module docstring."""

    library = "gevent"

    _hub: gevent.hub.Hub  # bound by _bind_hub
    _quit: gevent.event.Event  # set to end the pool's own hub thread

    _is_patched = staticmethod(is_patched)
    _os_thread_ident = staticmethod(cast("Callable[[], int]", monkey.get_original("_thread", "get_ident")))
    _allocate_lock = staticmethod(cast("Callable[[], threading.Lock]", monkey.get_original("_thread", "allocate_lock")))
    _spawn = staticmethod(gevent.spawn)

    def _call_soon(self, function: Callable[..., object], *args: object) -> None:
        self._hub.loop.run_callback(function, *args)

    def _call_soon_threadsafe(self, function: Callable[..., object], *args: object) -> None:
        self._hub.loop.run_callback_threadsafe(function, *args)

    def _call_later(self, seconds: float, function: Callable[..., object], *args: object) -> Callable[[], object]:
        timer = self._hub.loop.timer(seconds)
        timer.start(function, *args)
        cancel: Callable[[], object] = timer.close  # close() stops the timer, then frees it
        return cancel

    def _bind_hub(self) -> None:
        self._hub = gevent.get_hub()

    def _run_hub(self, ready: threading.Event) -> None:
        hub = self._hub
        keepalive = hub.loop.async_()  # an active watcher: the loop runs while idle
        keepalive.start(lambda: None)
        self._quit = gevent.event.Event()
        ready.set()
        try:
            self._quit.wait()
        finally:
            keepalive.stop()
            keepalive.close()
            hub.destroy(destroy_loop=True)

    def _quit_hub(self) -> None:
        self._call_in_hub(self._quit.set)


__all__ = ["STOP_TIMEOUT", "GeventPool", "is_patched"]

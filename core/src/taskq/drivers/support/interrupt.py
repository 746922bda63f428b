"""Raising an exception inside another thread's running job: how thread pools get time limits.

A helper for pool plugins (the thread pool and the asyncio pool's executor use it).

CPython's ``PyThreadState_SetAsyncExc`` asks a thread to raise an exception at its next
Python bytecode. That is the whole of its power and its limit: a thread blocked in a C
call (``time.sleep``, a socket read, waiting on a lock, a long NumPy operation) raises it
only once the call returns. Nothing can stop a thread sooner, which is why a thread pool
offers soft time limits but no hard ones.

The race this module closes: the exception must land inside the job and never in the
pool's own code once the job is over. :class:`InterruptibleCall` records which thread
runs the job and whether it is still running, under a lock that :meth:`raise_in` holds
too; when the job returns, an exception still pending is withdrawn, and one that landed
in the few bytecodes after the job is swallowed. A value the job returned is never lost
to a late exception: it is stored by C code (``list.extend``) before the interpreter
looks for pending exceptions again.

"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable

# Not ``argtypes``: that would change the function for every other user of ctypes.pythonapi.
_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


class InterruptibleCall:
    """One call of a job in some thread, which another thread may interrupt."""

    __slots__ = ("_early", "_finished", "_lock", "_pending", "_running", "_thread")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread = 0
        self._running = False
        self._finished = False
        self._pending = False
        self._early: type[BaseException] | None = None  # asked for before the job started

    def call(self, fn: Callable[..., object], args: tuple[object, ...]) -> tuple[bool, object]:
        """Run ``fn(*args)`` here: ``(True, value)`` or ``(False, exception)``. Never raises."""
        returned: list[object] = []
        error: BaseException | None = None
        try:
            with self._lock:
                self._thread = threading.get_ident()
                self._running = True
                early = self._early
            if early is not None:
                raise early
            # extend() stores the value in C, before a late interrupt can be raised here.
            returned.extend(itertools.starmap(fn, (args,)))
        except BaseException as exc:  # the job's own exception, or an interrupt: both are its outcome
            error = exc
        while True:
            try:
                self._finish()
                break
            except BaseException:  # noqa: S112 - an interrupt that landed after the job: not its outcome
                continue
        if returned:
            return True, returned[0]
        return False, error

    def _finish(self) -> None:
        with self._lock:
            self._running = False
            self._finished = True
            if self._pending:
                self._pending = False
                _set_async_exc(ctypes.c_ulong(self._thread), None)  # NULL: withdraw what is pending

    @property
    def is_running(self) -> bool:
        return self._running

    def raise_in(self, exc_type: type[BaseException]) -> bool:
        """Ask the thread running the job to raise ``exc_type``; False once the job is over.

        The exception is raised at the thread's next Python bytecode: at once in Python
        code, only when it returns from a blocking C call otherwise. Asked before the
        job starts, it is raised as the job starts.
        """
        with self._lock:
            if self._finished:
                return False
            if not self._running:
                self._early = exc_type
                return True
            _set_async_exc(ctypes.c_ulong(self._thread), ctypes.py_object(exc_type))
            self._pending = True
            return True


__all__ = ["InterruptibleCall"]

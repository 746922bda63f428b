"""Snapshots of a cluster's state, taken at a steady pace: Celery's "camera".

A camera is a :class:`Polaroid` subclass whose :meth:`~Polaroid.on_shutter` is given the
:class:`~taskq.events.state.State` every ``frequency`` seconds (and once more at the end),
to store it, export it, alert on it::

    class Recorder(Polaroid):
        def on_shutter(self, state):
            save(len(state.alive_workers()), [t.uuid for t in state.tasks_by_state("FAILURE")])

and ``taskq events --camera proj.monitor.Recorder --frequency 10`` runs it, as ``celery
events --camera`` does. A camera that raises is logged and goes on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from taskq.events import EventReceiver
from taskq.events.state import State

if TYPE_CHECKING:
    from taskq.app import App

logger = logging.getLogger(__name__)

#: Seconds between two shots, unless told.
DEFAULT_FREQUENCY = 1.0


class Polaroid:
    """Takes a snapshot of ``state`` every ``frequency`` seconds; subclass and define :meth:`on_shutter`."""

    def __init__(self, state: State, frequency: float = DEFAULT_FREQUENCY) -> None:
        if not frequency > 0:
            raise ValueError(f"a camera's frequency is a number of seconds above 0, not {frequency!r}")
        self.state = state
        self.frequency = frequency
        self.shots = 0
        #: Held while a snapshot is taken: take it to change the state from another thread.
        self.lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def on_shutter(self, state: State) -> None:
        """Called with the state at every shot, from the camera's thread; define it."""

    def on_cleanup(self) -> None:
        """Called once the camera stopped (close what on_shutter opened)."""

    def shutter(self) -> None:
        """Take one snapshot now."""
        with self.lock:
            try:
                self.on_shutter(self.state)
            except Exception:
                logger.exception("the camera %s failed to take a snapshot; it goes on", type(self).__name__)
            self.shots += 1

    def install(self) -> None:
        """Start taking a snapshot every :attr:`frequency` seconds, in a thread of its own."""
        self._thread = threading.Thread(target=self._run, name="taskq-camera", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.frequency):
            self.shutter()

    def cancel(self) -> None:
        """Stop, take a last snapshot (what came since the previous one), and clean up."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self.frequency + 5)
        self.shutter()
        self.on_cleanup()

    def __enter__(self) -> Polaroid:
        self.install()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cancel()


def run_camera(
    app: App,
    camera: type[Polaroid],
    frequency: float = DEFAULT_FREQUENCY,
    *,
    timeout: float | None = None,
    state: State | None = None,
) -> Polaroid:
    """Follow ``app``'s events into a state and run ``camera`` on it until Ctrl-C (or
    ``timeout`` seconds); returns the camera."""
    state = state if state is not None else State()
    shots = camera(state, frequency)

    def take(event: dict[str, object]) -> None:
        with shots.lock:  # never while a snapshot is being taken
            state.event(event)

    # Ctrl-C ends it, with a last snapshot
    with EventReceiver(app, {"*": take}) as receiver, shots, contextlib.suppress(KeyboardInterrupt):
        receiver.capture(timeout=timeout)
    return shots


__all__ = ["DEFAULT_FREQUENCY", "Polaroid", "run_camera"]

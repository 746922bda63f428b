"""``taskq top``: a live view of a cluster in the terminal, from its events.

Workers (alive or lost, active, processed, load), task rates, and the most recent tasks
with their state; move with the arrow keys (or j/k), Enter shows the selected task's
details, ``r`` revokes it (``t``: and terminates it), ``q`` quits. The screen is redrawn
a few times a second; events are read by a thread of its own into a
:class:`~taskq.events.state.State`.
"""

from __future__ import annotations

import curses
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from taskq.events import EventReceiver
from taskq.events.state import State, TaskState

if TYPE_CHECKING:
    from taskq.app import App

# Seconds between two redraws.
REFRESH = 0.25
# Seconds over which the task rates are counted.
RATE_WINDOW = 10.0


class Top:
    """The state behind the screen: what the events told, the selection, the last message."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.state = State()
        self.selected = 0
        self.details: TaskState | None = None
        self.message = ""
        self._ended: deque[float] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._receiver = EventReceiver(app, {"*": self._on_event})

    def _on_event(self, event: dict[str, object]) -> None:
        with self._lock:
            self.state.event(event)
            if event.get("type") in ("task-succeeded", "task-failed"):
                self._ended.append(time.monotonic())

    def read_events(self) -> None:
        while not self._stop.is_set():
            self._receiver.capture(timeout=REFRESH)

    def rate(self) -> float:
        """Tasks ended per second over the last :data:`RATE_WINDOW` seconds."""
        horizon = time.monotonic() - RATE_WINDOW
        while self._ended and self._ended[0] < horizon:
            self._ended.popleft()
        return len(self._ended) / RATE_WINDOW

    def tasks(self) -> list[TaskState]:
        """The tasks, the most recently sent or received first (a row keeps its place as
        its task moves on)."""
        return sorted(self.state.tasks.values(), key=_first_seen, reverse=True)

    def revoke(self, terminate: bool) -> None:
        tasks = self.tasks()
        if not tasks:
            return
        task = tasks[min(self.selected, len(tasks) - 1)]
        try:
            self.app.control.revoke(task.uuid, terminate=terminate)
            self.message = f"revoked {task.uuid}{' (terminate)' if terminate else ''}"
        except Exception as exc:  # shown, not raised: the view goes on
            self.message = f"could not revoke {task.uuid}: {exc}"

    def close(self) -> None:
        self._stop.set()
        self._receiver.should_stop = True


def _first_seen(task: TaskState) -> float:
    return min(task.timestamps.values(), default=0.0)


def run(app: App) -> None:
    """Show the live view until ``q`` (or Ctrl-C)."""
    top = Top(app)
    reader = threading.Thread(target=top.read_events, name="taskq-top-events", daemon=True)
    reader.start()
    try:
        curses.wrapper(_loop, top)
    except KeyboardInterrupt:
        pass
    finally:
        top.close()
        reader.join(timeout=2 * REFRESH + 1)


def _loop(screen: curses.window, top: Top) -> None:
    curses.curs_set(0)
    screen.timeout(int(REFRESH * 1000))
    while True:
        with top._lock:
            _draw(screen, top)
        key = screen.getch()
        if key in (ord("q"), ord("Q")):
            return
        if key in (curses.KEY_DOWN, ord("j")):
            top.selected += 1
        elif key in (curses.KEY_UP, ord("k")):
            top.selected = max(0, top.selected - 1)
        elif key in (curses.KEY_ENTER, 10, 13):
            tasks = top.tasks()
            top.details = tasks[min(top.selected, len(tasks) - 1)] if tasks and top.details is None else None
        elif key == 27:  # Escape
            top.details = None
        elif key in (ord("r"), ord("t")):
            top.revoke(terminate=key == ord("t"))


def _draw(screen: curses.window, top: Top) -> None:
    screen.erase()
    height, width = screen.getmaxyx()

    def put(row: int, text: str, attr: int = 0) -> None:
        if 0 <= row < height:
            screen.addnstr(row, 0, text, max(0, width - 1), attr)

    state = top.state
    now = time.time()
    alive = state.alive_workers(now)
    put(
        0,
        f"taskq top  workers {len(alive)}/{len(state.workers)} alive  tasks {state.task_count}  "
        f"{top.rate():.1f} tasks/s  events {state.event_count}",
        curses.A_BOLD,
    )
    put(1, "q quit  up/down select  enter details  r revoke  t terminate")
    row = 3
    put(row, f"{'WORKER':<32} {'STATUS':<8} {'ACTIVE':>6} {'PROCESSED':>10}  LOAD", curses.A_UNDERLINE)
    for worker in list(state.workers.values())[: max(1, (height - 8) // 3)]:
        row += 1
        status = "online" if worker.alive(now) else "lost" if worker.online else "offline"
        load = " ".join(f"{value:.2f}" for value in worker.loadavg)
        put(row, f"{worker.hostname:<32} {status:<8} {worker.active:>6} {worker.processed:>10}  {load}")
    row += 2
    if top.details is not None:
        _draw_details(put, row, top.details)
        screen.refresh()
        return
    put(row, f"{'UUID':<36} {'NAME':<28} {'STATE':<9} {'WORKER':<20} RUNTIME", curses.A_UNDERLINE)
    tasks = top.tasks()
    if tasks:
        top.selected = min(top.selected, len(tasks) - 1)
    for index, task in enumerate(tasks[: max(0, height - row - 3)]):
        runtime = f"{task.runtime:.3f}s" if task.runtime is not None else ""
        line = f"{task.uuid:<36} {(task.name or '?')[:28]:<28} {task.state:<9} {(task.worker or '')[:20]:<20} {runtime}"
        put(row + 1 + index, line, curses.A_REVERSE if index == top.selected else 0)
    put(height - 1, top.message)
    screen.refresh()


def _draw_details(put: Callable[..., None], row: int, task: TaskState) -> None:
    lines = [
        f"task {task.uuid}  (Escape or Enter: back)",
        f"name      {task.name}",
        f"state     {task.state}",
        f"worker    {task.worker}",
        f"args      {task.args}",
        f"kwargs    {task.kwargs}",
        f"result    {task.result}",
        f"exception {task.exception}",
        f"runtime   {task.runtime}",
        f"retries   {task.retries}",
        "history   " + ", ".join(kind for kind, _ in task.history),
    ]
    if task.traceback:
        lines += ["traceback", *task.traceback.splitlines()]
    for offset, line in enumerate(lines):
        put(row + offset, line)


__all__ = ["Top", "run"]

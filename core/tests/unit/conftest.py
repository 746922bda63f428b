"""Helpers for taskq-core's unit tests: unique ``memory://`` apps and workers in a thread."""

from __future__ import annotations

import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator

import pytest

from taskq import App, hookimpl
from taskq.worker.consumer import Consumer
from taskq.worker.worker import Worker

# Longest wait for anything in these tests, in seconds; a pass never comes near it.
WAIT_TIMEOUT = 10.0
# Interval between two looks at a condition, in seconds.
POLL_INTERVAL = 0.005


def _wait_until(condition: Callable[[], object], what: str, timeout: float = WAIT_TIMEOUT) -> None:
    """Return once ``condition()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def _make_plugin(name: str, **hooks: Callable[..., object]) -> types.ModuleType:
    """A plugin module called ``name`` whose functions ``hooks`` are marked as hookimpls."""
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


class WorkerThread:
    """A :class:`Worker` running in a thread, started and stopped with deadlines."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="taskq-test-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.start()
        except BaseException as exc:  # handed to the test, SystemExit included
            self.error = exc

    def start(self) -> WorkerThread:
        self.thread.start()
        _wait_until(lambda: self.worker.ready.is_set() or not self.thread.is_alive(), "the worker to be ready")
        if not self.worker.ready.is_set():
            raise AssertionError(f"the worker failed to start: {self.error!r}") from self.error
        return self

    def join(self) -> None:
        self.thread.join(WAIT_TIMEOUT)
        assert not self.thread.is_alive(), "the worker thread did not end"

    def stop(self, *, cold: bool = False) -> None:
        self.worker.stop(cold=cold)
        self.join()

    @property
    def consumer(self) -> Consumer:
        consumer = self.worker.consumer
        assert consumer is not None
        return consumer


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """``wait_until(condition, what, timeout=10.0)``: poll until true, fail at the deadline."""
    return _wait_until


@pytest.fixture
def make_plugin() -> Callable[..., types.ModuleType]:
    """``make_plugin(name, hook_name=function, ...)``: a plugin module built in the test."""
    return _make_plugin


@pytest.fixture
def memory_url() -> str:
    return f"memory://{uuid.uuid4().hex}"


@pytest.fixture
def app(memory_url: str) -> App:
    """An app on its own ``memory://`` broker and result store; no config file read."""
    return App("tests", broker=memory_url, read_config=False)


@pytest.fixture
def start_worker() -> Iterator[Callable[..., WorkerThread]]:
    """Start a solo-pool worker for an app in a thread; every one still running is stopped."""
    running: list[WorkerThread] = []

    def start(app: App, **options: object) -> WorkerThread:
        options.setdefault("pool", "solo")
        runner = WorkerThread(Worker(app, **options))  # type: ignore[arg-type]
        running.append(runner)
        return runner.start()

    yield start
    for runner in running:
        if runner.thread.is_alive():
            runner.stop()

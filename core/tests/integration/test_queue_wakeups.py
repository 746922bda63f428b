"""QueueWakeups: a transport's notify, wait and interrupt on a shared store, in one piece."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.drivers.support.wakeup import QueueWakeups

# Longest a wait that should end at once may take, in seconds; a pass never comes near it.
PROMPT = 10.0


@pytest.fixture
def directory(tmp_path: Path) -> str:
    folder = tmp_path / "wake"
    folder.mkdir()
    return str(folder)


@pytest.fixture
def pair(directory: str) -> Iterator[tuple[QueueWakeups, QueueWakeups]]:
    waiting, writing = QueueWakeups(directory), QueueWakeups(directory)
    yield waiting, writing
    waiting.close()
    writing.close()


def wait_in_thread(wakeups: QueueWakeups, due: float | None = None, timeout: float = 60.0) -> threading.Thread:
    thread = threading.Thread(target=wakeups.wait, args=(lambda: due, timeout), daemon=True)
    thread.start()
    return thread


def test_a_notify_from_another_instance_ends_a_wait(pair: tuple[QueueWakeups, QueueWakeups]) -> None:
    waiting, writing = pair
    waiting.wait(lambda: None, 0.0)  # announces the waiter
    thread = wait_in_thread(waiting)
    time.sleep(0.05)
    writing.notify()
    thread.join(PROMPT)
    assert not thread.is_alive()


def test_interrupt_ends_a_wait_from_another_thread(pair: tuple[QueueWakeups, QueueWakeups]) -> None:
    waiting, _ = pair
    thread = wait_in_thread(waiting)
    time.sleep(0.05)
    waiting.interrupt()
    thread.join(PROMPT)
    assert not thread.is_alive()


def test_an_interrupt_before_the_wait_ends_the_next_one_at_once(pair: tuple[QueueWakeups, QueueWakeups]) -> None:
    waiting, _ = pair
    waiting.interrupt()
    started = time.monotonic()
    waiting.wait(lambda: None, 60.0)
    assert time.monotonic() - started < PROMPT


def test_a_wait_ends_when_the_store_says_something_is_due(pair: tuple[QueueWakeups, QueueWakeups]) -> None:
    waiting, _ = pair
    started = time.monotonic()
    waiting.wait(lambda: time.time() + 0.2, 60.0)
    assert 0.15 <= time.monotonic() - started < PROMPT
    waiting.wait(lambda: time.time() - 1, 60.0)  # due already: at once
    assert time.monotonic() - started < PROMPT


def test_the_waiter_is_announced_in_the_directory_on_the_first_wait(pair: tuple[QueueWakeups, QueueWakeups]) -> None:
    waiting, _ = pair
    assert waiting.waiter is None
    waiting.wait(lambda: None, 0.0)
    assert waiting.waiter is not None and waiting.is_registered

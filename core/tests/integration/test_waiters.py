"""ResultWaiters: one announced waiter per waiting thread, woken by notify, reset in a forked child."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.drivers.support.waiters import ResultWaiters

# Longest a wait that should end at once may take, in seconds; a pass never comes near it.
PROMPT = 10.0
# A wait that nothing ends, in seconds.
SHORT = 0.05


@pytest.fixture
def waiters(tmp_path: Path) -> Iterator[ResultWaiters]:
    waiters = ResultWaiters(str(tmp_path / "wake"), owns_directory=True)
    yield waiters
    waiters.close()


def announcements(waiters: ResultWaiters) -> list[str]:
    return sorted(os.listdir(waiters.directory)) if os.path.isdir(waiters.directory) else []


def test_a_threads_first_wait_announces_its_waiter_and_returns_at_once(waiters: ResultWaiters) -> None:
    started = time.monotonic()
    waiters.wait(PROMPT)
    assert time.monotonic() - started < PROMPT
    assert len(announcements(waiters)) == 1


def test_notify_wakes_a_thread_waiting_in_another_thread(waiters: ResultWaiters) -> None:
    waiters.wait(0)  # announce
    threading.Timer(SHORT, waiters.notify).start()
    started = time.monotonic()
    waiters.wait(PROMPT)
    assert time.monotonic() - started < PROMPT


def test_each_waiting_thread_gets_a_waiter_of_its_own(waiters: ResultWaiters) -> None:
    threads = [threading.Thread(target=waiters.wait, args=(0,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROMPT)
    assert len(announcements(waiters)) == 3


def test_close_withdraws_every_announcement_and_a_later_wait_starts_afresh(waiters: ResultWaiters) -> None:
    waiters.wait(0)
    waiters.close()
    assert announcements(waiters) == []
    waiters.wait(0)
    assert len(announcements(waiters)) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_announces_its_own_waiter_and_leaves_the_parents(waiters: ResultWaiters) -> None:
    waiters.wait(0)
    parent = announcements(waiters)
    pid = os.fork()
    if pid == 0:  # the child: exit without running the parent's clean-up
        code = 1
        try:
            waiters.wait(0)  # closes its copy of the parent's socket, announces its own
            mine = [name for name in announcements(waiters) if f"-{os.getpid()}-" in name]
            code = 0 if len(mine) == 1 and set(parent) <= set(announcements(waiters)) else 1
            waiters.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert announcements(waiters) == parent

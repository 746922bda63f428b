"""The fork helpers of drivers/support/connections.py: the fork gate, PerProcess, keep_inherited, current_pid."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from taskq.drivers.support.connections import ForkGate, PerProcess, current_pid, fork_gate

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# Seconds any condition here may take.
DEADLINE = 10.0


def fork_and_wait(child: object) -> int:
    """Fork; the child runs ``child()`` and exits 0 if it returned True; returns the exit status."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(int(DEADLINE))
            code = 0 if child() else 2  # type: ignore[operator]
        finally:
            os._exit(code)
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the child did not finish within {DEADLINE}s")


def test_current_pid_follows_a_fork() -> None:
    parent = current_pid()
    assert parent == os.getpid()
    assert fork_and_wait(lambda: current_pid() == os.getpid() != parent) == 0


def test_a_fork_waits_until_no_thread_is_inside_the_gate() -> None:
    inside, leave = threading.Event(), threading.Event()
    left_at: list[float] = []

    def hold() -> None:
        with fork_gate:
            inside.set()
            leave.wait(DEADLINE)
            left_at.append(time.monotonic())

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(DEADLINE)
    threading.Timer(0.3, leave.set).start()
    assert fork_and_wait(lambda: True) == 0  # the fork happens only once the holder left
    forked_at = time.monotonic()
    holder.join(DEADLINE)
    assert left_at and left_at[0] <= forked_at


def test_a_child_enters_the_gate_although_a_thread_of_the_parent_was_waiting_to() -> None:
    gate = ForkGate()
    gate.before_fork()  # as a fork does: nobody may enter now
    entered = threading.Event()

    def enter() -> None:
        with gate:
            entered.set()

    waiter = threading.Thread(target=enter)
    waiter.start()
    assert not entered.wait(0.1)
    gate.after_fork_in_parent()
    assert entered.wait(DEADLINE)
    waiter.join(DEADLINE)


def test_the_gate_nests_in_one_thread() -> None:
    with fork_gate, fork_gate:
        pass
    assert fork_and_wait(lambda: True) == 0


def test_a_thread_inside_the_gate_may_fork_itself() -> None:
    with fork_gate:
        assert fork_and_wait(_enter_the_gate) == 0


def test_a_thread_inside_the_gate_forks_once_the_other_threads_left() -> None:
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with fork_gate:
            inside.set()
            leave.wait(DEADLINE)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(DEADLINE)
    threading.Timer(0.2, leave.set).start()
    with fork_gate:
        assert fork_and_wait(_enter_the_gate) == 0
    holder.join(DEADLINE)


def _enter_the_gate() -> bool:
    with fork_gate:
        return True


def test_per_process_makes_one_value_per_process_and_keeps_the_parents() -> None:
    made: list[int] = []

    def make() -> int:
        made.append(os.getpid())
        return os.getpid()

    value = PerProcess(make)
    assert value.get() == value.get() == os.getpid()
    assert made == [os.getpid()]
    assert fork_and_wait(lambda: value.get() == os.getpid() and made[-1] == os.getpid()) == 0
    assert value.get() == os.getpid()
    assert made == [os.getpid()]


def test_per_process_close_closes_only_what_this_process_made() -> None:
    closed: list[int] = []
    value = PerProcess(os.getpid)
    value.get()
    assert fork_and_wait(lambda: value.close(closed.append) is None and closed == []) == 0
    value.close(closed.append)
    assert closed == [os.getpid()]

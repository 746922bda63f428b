"""The consumer loop's calls between turns: periodic ones, and ones handed over from other threads."""

from __future__ import annotations

import math

from taskq.worker.chores import Chores


def test_a_periodic_call_runs_on_the_next_turn_then_once_per_interval() -> None:
    chores, calls = Chores(), []
    chores.every(2.0, lambda: calls.append("beat"))
    for now in (100.0, 101.0, 102.0, 103.9, 104.0):
        chores.run(now)
    assert calls == ["beat", "beat", "beat"]  # at 100, 102 and 104


def test_the_loop_may_wait_until_the_next_periodic_call_and_no_longer_than_asked() -> None:
    chores = Chores()
    assert chores.time_left(100.0, 5.0) == 5.0  # none: the loop's own limit
    chores.every(2.0, lambda: None)
    assert chores.time_left(100.0, 5.0) == 0.0  # due on the next turn
    chores.run(100.0)
    assert chores.time_left(100.5, 5.0) == 1.5
    assert chores.next_due == 102.0


def test_a_call_handed_over_runs_once_on_the_next_turn_before_periodic_ones() -> None:
    chores, calls = Chores(), []
    chores.every(10.0, lambda: calls.append("periodic"))
    chores.soon(lambda: calls.append("once"))
    chores.run(0.0)
    chores.run(1.0)
    assert calls == ["once", "periodic"]
    assert Chores().next_due == math.inf

"""What becomes of a task's message once the task has ended, by Celery's acknowledgement settings."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from taskq import states
from taskq.errors import Terminated, TimeLimitExceeded, WorkerLostError
from taskq.worker.acks import FAILED_KEPT, TIMED_OUT_KEPT, Action, after_outcome, after_pool_error
from taskq.worker.request import Request
from taskq.worker.trace import TraceOutcome


def request(*, acked_early: bool, on_failure: bool = True, on_lost: bool = False) -> Request:
    """What the rules read of a request: when its message was acked, and its task's settings."""
    task = SimpleNamespace(acks_on_failure_or_timeout=on_failure, reject_on_worker_lost=on_lost)
    return cast(Request, SimpleNamespace(acknowledged=acked_early, task=task))


@pytest.mark.parametrize(
    ("outcome", "action"),
    [
        (TraceOutcome(states.SUCCESS), (Action.NOTHING, None)),
        (TraceOutcome(states.FAILURE), (Action.NOTHING, None)),
        (TraceOutcome(states.REJECTED, requeue=True), (Action.PUBLISH_COPY, None)),
        (TraceOutcome(states.REJECTED, reject_reason="no"), (Action.DEAD_LETTER, "no")),
    ],
)
def test_a_message_acked_early_is_only_given_back_or_set_aside_when_the_task_asks(
    outcome: TraceOutcome, action: tuple[Action, str | None]
) -> None:
    assert after_outcome(request(acked_early=True), outcome) == action


@pytest.mark.parametrize(
    ("outcome", "on_failure", "action"),
    [
        (TraceOutcome(states.SUCCESS), True, (Action.ACK, None)),
        (TraceOutcome(states.RETRY), True, (Action.ACK, None)),
        (TraceOutcome(states.FAILURE), True, (Action.ACK, None)),
        (TraceOutcome(states.FAILURE), False, (Action.DEAD_LETTER, FAILED_KEPT)),
        (TraceOutcome(states.REJECTED, requeue=True), True, (Action.REQUEUE, None)),
        (TraceOutcome(states.REJECTED, reject_reason="no"), True, (Action.DEAD_LETTER, "no")),
    ],
)
def test_a_late_ack_message_follows_the_outcome_and_acks_on_failure_or_timeout(
    outcome: TraceOutcome, on_failure: bool, action: tuple[Action, str | None]
) -> None:
    assert after_outcome(request(acked_early=False, on_failure=on_failure), outcome) == action


@pytest.mark.parametrize(
    ("error", "on_failure", "on_lost", "action"),
    [
        (WorkerLostError("gone"), True, True, (Action.REQUEUE, None)),
        (OSError("pipe closed"), True, True, (Action.REQUEUE, None)),
        (WorkerLostError("gone"), True, False, (Action.ACK, None)),
        (TimeLimitExceeded("late"), True, True, (Action.ACK, None)),
        (TimeLimitExceeded("late"), False, False, (Action.DEAD_LETTER, TIMED_OUT_KEPT)),
        (Terminated("revoked"), False, True, (Action.ACK, None)),
    ],
)
def test_a_late_ack_message_of_a_task_the_pool_ended_is_requeued_only_when_its_process_was_lost(
    error: BaseException, on_failure: bool, on_lost: bool, action: tuple[Action, str | None]
) -> None:
    assert after_pool_error(request(acked_early=False, on_failure=on_failure, on_lost=on_lost), error) == action


def test_a_message_acked_early_has_nothing_left_when_the_pool_ends_its_task() -> None:
    assert after_pool_error(request(acked_early=True, on_lost=True), WorkerLostError("gone")) == (Action.NOTHING, None)

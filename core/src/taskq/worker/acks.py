"""What becomes of a task's message once the task has ended: acked, requeued or dead-lettered.

Celery's settings decide, as the task has them: ``acks_late`` (the message is still held
while the task runs, unacknowledged), ``acks_on_failure_or_timeout`` and
``reject_on_worker_lost``. A message acknowledged early has left the broker: giving it
back means publishing a copy, and there is nothing left to acknowledge.

These functions only decide; the consumer acts (see docs/worker.md, "Acknowledgement").
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from taskq import states
from taskq.errors import Terminated, TimeLimitExceeded, WorkerLostError

if TYPE_CHECKING:
    from taskq.worker.request import Request
    from taskq.worker.trace import TraceOutcome

#: Why a late-ack message whose task failed is dead-lettered.
FAILED_KEPT = "task failed and acks_on_failure_or_timeout is off"
#: Why a late-ack message whose task ran past its hard time limit is dead-lettered.
TIMED_OUT_KEPT = "task timed out and acks_on_failure_or_timeout is off"


class Action(enum.Enum):
    """What to do with a message."""

    ACK = "ack"
    REQUEUE = "requeue"  # still held: back to its queue
    PUBLISH_COPY = "publish a copy"  # acknowledged early: a copy goes back to its queue
    DEAD_LETTER = "dead-letter"  # set aside, with a reason
    NOTHING = "nothing"  # acknowledged early, and nothing to give back


def after_outcome(request: Request, outcome: TraceOutcome) -> tuple[Action, str | None]:
    """The action for the message of a task that ran to its end, and the reason to dead-letter it."""
    if request.acknowledged:
        if outcome.requeue:
            return Action.PUBLISH_COPY, None
        if outcome.reject_reason is not None:
            return Action.DEAD_LETTER, outcome.reject_reason
        return Action.NOTHING, None
    if outcome.reject_reason is not None:
        return Action.DEAD_LETTER, outcome.reject_reason
    if outcome.requeue:
        return Action.REQUEUE, None
    if outcome.state == states.FAILURE and not request.task.acks_on_failure_or_timeout:
        return Action.DEAD_LETTER, FAILED_KEPT
    return Action.ACK, None


def after_pool_error(request: Request, error: BaseException) -> tuple[Action, str | None]:
    """The action for the message of a task the pool ended: a hard time limit, ``revoke(terminate=True)``,
    or a lost process (any other error), and the reason to dead-letter it."""
    lost = isinstance(error, WorkerLostError) or not isinstance(error, (TimeLimitExceeded, Terminated))
    if request.acknowledged:
        return Action.NOTHING, None
    if lost and request.task.reject_on_worker_lost:
        return Action.REQUEUE, None
    if isinstance(error, TimeLimitExceeded) and not request.task.acks_on_failure_or_timeout:
        return Action.DEAD_LETTER, TIMED_OUT_KEPT
    return Action.ACK, None


__all__ = ["FAILED_KEPT", "TIMED_OUT_KEPT", "Action", "after_outcome", "after_pool_error"]

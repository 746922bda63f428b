"""Workflows between taskq and Celery 5, both ways: chains, groups, chords, errbacks.

Each workflow is sent by one side's client, run by the other side's worker and read by
the sender. Results are in Redis (with a Redis or a RabbitMQ broker), where a chord keeps
its state in Celery's layout, so header tasks run by either kind of worker count into the
same keys and the body is sent once.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from conftest import Worker, module

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
# Seconds to watch the logs for a second run of a task that must run once.
SECOND_RUN_WATCH = 1.5


def body_runs(workers: list[Worker], body_id: str) -> int:
    """How many times the task ``body_id`` ran to the end, by the workers' logs.

    A worker logs the end just after it stores the result the client read: wait for the
    first line, then watch a little longer for a second.
    """
    pattern = re.compile(rf"\[{re.escape(body_id)}\] succeeded")

    def count() -> int:
        return sum(len(pattern.findall(worker.log())) for worker in workers)

    deadline = time.monotonic() + TIMEOUT
    while count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    deadline = time.monotonic() + SECOND_RUN_WATCH
    while count() == 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return count()


# ---- A Celery client, taskq workers ----------------------------------------------------


def test_a_celery_chain_runs_on_a_taskq_worker(interop, start_worker):
    from celery import chain

    start_worker("taskq")
    celery = module(interop, "celery")
    result = chain(celery.add.s(1, 2), celery.add.s(3), celery.mul.s(10)).apply_async()
    assert result.get(timeout=TIMEOUT) == 60
    assert result.parent.get(timeout=TIMEOUT) == 6


def test_a_celery_group_runs_on_a_taskq_worker(interop, start_worker):
    from celery import group

    start_worker("taskq")
    celery = module(interop, "celery")
    result = group(celery.add.s(i, i) for i in range(4)).apply_async()
    assert result.get(timeout=TIMEOUT) == [0, 2, 4, 6]


def test_a_celery_chord_runs_on_a_taskq_worker_and_its_body_once_with_every_result(interop, start_worker):
    from celery import chord

    worker = start_worker("taskq")
    celery = module(interop, "celery")
    result = chord([celery.add.s(i, i) for i in range(5)], celery.listed.s()).apply_async()
    assert result.get(timeout=TIMEOUT) == [0, 2, 4, 6, 8]
    assert body_runs([worker], result.id) == 1


def test_a_celery_chord_of_chords_runs_on_a_taskq_worker(interop, start_worker):
    from celery import chord

    worker = start_worker("taskq")
    celery = module(interop, "celery")
    inner = [chord([celery.add.s(i, i), celery.add.s(i, 1)], celery.total.s()) for i in (1, 10)]
    result = chord(inner, celery.listed.s()).apply_async()
    assert result.get(timeout=TIMEOUT) == [2 + 2, 20 + 11]
    assert body_runs([worker], result.id) == 1


def test_a_celery_chain_with_an_errback_fails_on_a_taskq_worker_and_calls_it_once(interop, start_worker):
    from celery import chain

    worker = start_worker("taskq")
    celery = module(interop, "celery")
    errback_id = str(uuid.uuid4())
    errback = celery.on_error.s().set(task_id=errback_id)
    result = chain(celery.add.s(1, 1), celery.fail.si("boom"), celery.add.s(1)).apply_async(link_error=errback)
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=TIMEOUT)
    failed_id = result.parent.id
    # Polled, not get(): Celery's Redis client misses a result stored between its first look
    # and its subscription (the errback ends moments after the chain fails) and then waits
    # its whole timeout.
    errback_result = celery.app.AsyncResult(errback_id)
    deadline = time.monotonic() + TIMEOUT
    while not errback_result.ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert errback_result.result == f"handled {failed_id}"
    assert body_runs([worker], errback_id) == 1


def test_a_celery_chord_run_by_both_kinds_of_workers_sends_its_body_once(interop, start_worker):
    from celery import chord

    workers = [start_worker("taskq"), start_worker("celery")]
    celery = module(interop, "celery")
    result = chord([celery.slow_add.s(i, 0) for i in range(8)], celery.listed.s()).apply_async()
    assert result.get(timeout=TIMEOUT) == list(range(8))
    assert body_runs(workers, result.id) == 1


# ---- A taskq client, Celery workers ----------------------------------------------------


def test_a_taskq_chain_runs_on_a_celery_worker(interop, start_worker):
    from taskq import chain

    start_worker("celery")
    taskq_side = module(interop, "taskq")
    result = chain(taskq_side.add.s(1, 2), taskq_side.add.s(3), taskq_side.mul.s(10)).apply_async()
    assert result.get(timeout=TIMEOUT) == 60
    assert result.parent is not None
    assert result.parent.get(timeout=TIMEOUT) == 6


def test_a_taskq_group_runs_on_a_celery_worker(interop, start_worker):
    from taskq import group

    start_worker("celery")
    taskq_side = module(interop, "taskq")
    result = group(taskq_side.add.s(i, i) for i in range(4)).apply_async()
    assert result.join(timeout=TIMEOUT) == [0, 2, 4, 6]


def test_a_taskq_chord_runs_on_a_celery_worker_and_its_body_once_with_every_result(interop, start_worker):
    from taskq import chord

    worker = start_worker("celery")
    taskq_side = module(interop, "taskq")
    result = chord([taskq_side.add.s(i, i) for i in range(5)], taskq_side.listed.s()).apply_async()
    assert result.get(timeout=TIMEOUT) == [0, 2, 4, 6, 8]
    assert body_runs([worker], result.id) == 1


def test_a_taskq_chord_of_chords_runs_on_a_celery_worker(interop, start_worker):
    from taskq import chord

    worker = start_worker("celery")
    taskq_side = module(interop, "taskq")
    inner = [chord([taskq_side.add.s(i, i), taskq_side.add.s(i, 1)], taskq_side.total.s()) for i in (1, 10)]
    result = chord(inner, taskq_side.listed.s()).apply_async()
    assert result.get(timeout=TIMEOUT) == [2 + 2, 20 + 11]
    assert body_runs([worker], result.id) == 1


def test_a_taskq_chain_with_an_errback_fails_on_a_celery_worker_and_calls_it_once(interop, start_worker):
    from taskq import chain

    worker = start_worker("celery")
    taskq_side = module(interop, "taskq")
    errback_id = str(uuid.uuid4())
    errback = taskq_side.on_error.s().set(task_id=errback_id)
    steps = chain(taskq_side.add.s(1, 1), taskq_side.fail.si("boom"), taskq_side.add.s(1))
    result = steps.apply_async(link_error=errback)
    failed = result.parent
    assert failed is not None
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=TIMEOUT)  # a Celery worker leaves the steps after a failed one unrun
    assert taskq_side.app.AsyncResult(errback_id).get(timeout=TIMEOUT) == f"handled {failed.id}"
    assert body_runs([worker], errback_id) == 1


def test_a_taskq_chord_run_by_both_kinds_of_workers_sends_its_body_once(interop, start_worker):
    from taskq import chord

    workers = [start_worker("celery"), start_worker("taskq")]
    taskq_side = module(interop, "taskq")
    result = chord([taskq_side.slow_add.s(i, 0) for i in range(8)], taskq_side.listed.s()).apply_async()
    assert result.get(timeout=TIMEOUT) == list(range(8))
    assert body_runs(workers, result.id) == 1


# ---- Stamps, both ways -----------------------------------------------------------------


def test_a_celery_stamped_chain_and_group_carry_their_stamps_to_taskq_workers(interop, start_worker):
    from celery import chain, group
    from celery.canvas import StampingVisitor

    class Tenant(StampingVisitor):
        def on_signature(self, sig, **headers):
            return {"tenant": "acme"}

    start_worker("taskq")
    celery = module(interop, "celery")
    flow = chain(celery.stamps.s(), group(celery.stamps.s(), celery.stamps.s()), celery.stamps.s())
    flow.stamp(Tenant(), run="r1")
    result = flow.apply_async()
    assert result.get(timeout=TIMEOUT) == {"run": "r1", "tenant": "acme"}
    assert result.parent.get(timeout=TIMEOUT) == [{"run": "r1", "tenant": "acme"}] * 2


def test_a_taskq_stamped_chain_and_group_carry_their_stamps_to_celery_workers(interop, start_worker):
    from taskq import chain, group
    from taskq.canvas import StampingVisitor

    class Tenant(StampingVisitor):
        def on_signature(self, sig, **headers):
            return {"tenant": "acme"}

    start_worker("celery")
    taskq_side = module(interop, "taskq")
    flow = chain(taskq_side.stamps.s(), group(taskq_side.stamps.s(), taskq_side.stamps.s()), taskq_side.stamps.s())
    flow.stamp(Tenant(), run="r1")
    result = flow.apply_async()
    assert result.get(timeout=TIMEOUT) == {"run": "r1", "tenant": "acme"}
    assert result.parent.get(timeout=TIMEOUT) == [{"run": "r1", "tenant": "acme"}] * 2

"""taskq and Celery 5 on one broker, both ways: clients, workers, results, retries, errors."""

from __future__ import annotations

import datetime
import time

import pytest
from conftest import module

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


# ---- A Celery client, a taskq worker ---------------------------------------------------


def test_a_celery_client_task_runs_on_a_taskq_worker_and_celery_reads_the_result(interop, start_worker):
    start_worker("taskq")
    celery = module(interop, "celery")
    assert celery.add.delay(2, 3).get(timeout=TIMEOUT) == 5
    assert celery.app.send_task("interop.add", (40, 2)).get(timeout=TIMEOUT) == 42


def test_a_celery_client_sees_a_taskq_worker_failure_with_its_type_and_traceback(interop, start_worker):
    start_worker("taskq")
    celery = module(interop, "celery")
    result = celery.fail.delay("from taskq")
    with pytest.raises(ValueError, match="from taskq"):
        result.get(timeout=TIMEOUT)
    assert result.state == "FAILURE"
    assert "ValueError: from taskq" in (result.traceback or "")


def test_a_celery_countdown_and_retries_are_honoured_by_a_taskq_worker(interop, start_worker):
    start_worker("taskq")
    celery = module(interop, "celery")
    sent = time.monotonic()
    assert celery.add.apply_async((1, 1), countdown=1.5).get(timeout=TIMEOUT) == 2
    assert time.monotonic() - sent >= 1.4
    assert celery.flaky.delay("c2t").get(timeout=TIMEOUT) == "c2t after 2"


def test_a_celery_task_past_its_expiry_is_revoked_by_a_taskq_worker(interop, start_worker):
    celery = module(interop, "celery")
    expired = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    if interop["broker"] == "rabbitmq":
        # Celery turns expires into the message's AMQP expiration (0 here): RabbitMQ drops
        # it unless a consumer takes it at once, and then the taskq worker revokes it.
        worker = start_worker("taskq")
        result = celery.add.apply_async((1, 1), expires=expired)
        time.sleep(2.0)
        assert result.state in {"PENDING", "REVOKED"}
        assert "succeeded" not in worker.log()
        return
    result = celery.add.apply_async((1, 1), expires=expired)
    start_worker("taskq")
    from celery.exceptions import TaskRevokedError

    with pytest.raises(TaskRevokedError, match=r"expired|revoked"):  # Celery's own type, which its users catch
        result.get(timeout=TIMEOUT)
    assert result.state == "REVOKED"


# ---- A taskq client, a Celery worker ---------------------------------------------------


def test_a_taskq_client_task_runs_on_a_celery_worker_and_taskq_reads_the_result(interop, start_worker):
    start_worker("celery")
    taskq_side = module(interop, "taskq")
    assert taskq_side.add.delay(2, 3).get(timeout=TIMEOUT) == 5
    echoed = taskq_side.echo_request.delay().get(timeout=TIMEOUT)
    assert echoed["retries"] == 0


def test_a_taskq_client_sees_a_celery_worker_failure_with_its_type_and_traceback(interop, start_worker):
    start_worker("celery")
    taskq_side = module(interop, "taskq")
    result = taskq_side.fail.delay("from celery")
    with pytest.raises(ValueError, match="from celery"):
        result.get(timeout=TIMEOUT)
    assert "ValueError: from celery" in (result.traceback or "")


def test_a_celery_worker_failure_of_a_type_not_imported_here_is_a_task_error_and_imports_nothing(interop, start_worker):
    import sys

    from taskq import TaskError

    start_worker("celery")
    taskq_side = module(interop, "taskq")
    sys.modules.pop("interop_errors", None)
    result = taskq_side.fail_custom.delay("custom from celery")
    with pytest.raises(TaskError, match="custom from celery") as info:
        result.get(timeout=TIMEOUT)
    assert (info.value.exc_module, info.value.exc_type) == ("interop_errors", "InteropError")
    assert "interop_errors" not in sys.modules  # importable here, yet never imported by get()
    import interop_errors  # the application imports it: now its type comes back

    result._cache = None
    with pytest.raises(interop_errors.InteropError, match="custom from celery"):
        result.get(timeout=TIMEOUT)


def test_a_taskq_countdown_and_retries_are_honoured_by_a_celery_worker(interop, start_worker):
    start_worker("celery")
    taskq_side = module(interop, "taskq")
    sent = time.monotonic()
    assert taskq_side.add.apply_async((1, 1), countdown=1.5).get(timeout=TIMEOUT) == 2
    assert time.monotonic() - sent >= 1.4
    assert taskq_side.flaky.delay("t2c").get(timeout=TIMEOUT) == "t2c after 2"


def test_a_taskq_task_past_its_expiry_is_revoked_by_a_celery_worker(interop, start_worker):
    taskq_side = module(interop, "taskq")
    result = taskq_side.add.apply_async((1, 1), expires=-5)
    start_worker("celery")
    from taskq.errors import TaskRevokedError

    with pytest.raises(TaskRevokedError, match=r"expired|revoked|Revoked"):  # taskq's type for Celery's record
        result.get(timeout=TIMEOUT)
    assert result.state == "REVOKED"

"""Sending: the send options, written once as a dataclass, and what each send puts on the wire."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import pytest

from taskq import App
from taskq._protocol import decode
from taskq.builtins.memory_drivers import MemoryTransport
from taskq.drivers.transport import Delivery
from taskq.sending import NO_OPTIONS, SEND_OPTIONS, SendCall, SendOptions, send_options
from taskq.task import Task

TIMEOUT = 10.0


def claim_one(app: App, queue: str = "taskq") -> Delivery:
    [delivery] = MemoryTransport(str(app.conf["broker_url"])).claim([queue], 10)
    return delivery


def headers(app: App, queue: str = "taskq") -> dict[str, object]:
    return decode(app.serializers, claim_one(app, queue).message).headers


# ---- The options object ---------------------------------------------------------------------


def test_the_send_options_are_the_fields_of_one_dataclass() -> None:
    assert {field.name for field in dataclasses.fields(SendOptions)} == SEND_OPTIONS
    assert {"countdown", "eta", "expires", "queue", "priority", "task_id", "link", "link_error"} <= SEND_OPTIONS


def test_apply_async_and_send_task_take_the_task_arguments_then_the_options() -> None:
    parameters = inspect.signature(SendCall).parameters
    assert list(parameters)[:2] == ["args", "kwargs"]
    options = {name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert options == set(parameters) - {"args", "kwargs"}
    assert options - SEND_OPTIONS == {
        "exchange_type", "mandatory", "immediate", "retry", "retry_policy", "compression",
        "add_to_parent", "publisher", "producer", "connection", "delivery_mode", "declare", "stamped_headers",
        "subtask_type",
    }  # fmt: skip  # Celery's AMQP-only options, accepted and dropped


def test_a_send_without_options_builds_none() -> None:
    assert send_options("apply_async", {}) is NO_OPTIONS


def test_options_given_by_keyword_land_in_their_fields() -> None:
    options = send_options("apply_async", {"countdown": 5, "queue": "mail"})
    assert (options.countdown, options.queue, options.expires) == (5, "mail", None)


def test_celery_only_options_are_dropped() -> None:
    options = send_options("apply_async", {"mandatory": True, "retry_policy": {}, "queue": "mail"})
    assert options == SendOptions(queue="mail")


def test_an_unknown_option_is_a_type_error_that_suggests_the_nearest_and_lists_them_all() -> None:
    with pytest.raises(
        TypeError, match=r"apply_async\(\) got unknown option\(s\): countdwn; did you mean 'countdown'\?"
    ):
        send_options("apply_async", {"countdwn": 5})
    with pytest.raises(TypeError, match="the options are argsrepr, callbacks, chain"):
        send_options("apply_async", {"colour": "red"})


def test_an_unknown_option_given_to_apply_async_names_apply_async(app: App) -> None:
    @app.task
    def job() -> None:
        pass

    with pytest.raises(TypeError, match=r"apply_async\(\) got unknown option"):
        job.apply_async(colour="red")  # type: ignore[call-arg]  # the mistake under test


def test_the_sending_methods_keep_their_names_and_documentation(app: App) -> None:
    @app.task
    def job() -> None:
        pass

    assert (job.apply_async.__name__, app.send_task.__name__) == ("apply_async", "send_task")
    assert "SendOptions" in (job.apply_async.__doc__ or "")
    assert "by name" in (app.send_task.__doc__ or "")


# ---- What a send carries ----------------------------------------------------------------------


def test_an_option_given_to_the_call_wins_over_the_task_option(app: App) -> None:
    @app.task(queue="slow", priority=1)
    def job() -> None:
        pass

    job.apply_async(queue="fast", priority=9)
    delivery = claim_one(app, "fast")
    assert delivery.message.properties.get("priority") == 9


def test_send_task_by_name_sends_args_and_options(app: App) -> None:
    app.send_task("proj.add", (1, 2), {"z": 3}, task_id="fixed", headers={"tenant": "acme"})
    message = decode(app.serializers, claim_one(app).message)
    assert (message.id, message.args, message.kwargs) == ("fixed", [1, 2], {"z": 3})
    assert message.headers["tenant"] == "acme"


def test_a_task_that_sends_another_is_its_parent(app: App, start_worker: Callable[..., object]) -> None:
    @app.task(bind=True)
    def child(self: Task[..., object]) -> str | None:
        return self.request.parent_id

    @app.task
    def parent() -> str:
        return child.delay().id

    start_worker(app)
    result = parent.delay()
    child_id = result.get(timeout=TIMEOUT)
    assert app.AsyncResult(child_id).get(timeout=TIMEOUT) == result.id


def test_retry_refuses_an_option_it_sets_itself(app: App, start_worker: Callable[..., object]) -> None:
    @app.task(bind=True)
    def job(self: object) -> None:
        self.retry(task_id="other", countdown=0)  # type: ignore[attr-defined]

    start_worker(app)
    with pytest.raises(TypeError, match="retry\\(\\) got option\\(s\\) it sets itself: task_id"):
        job.delay().get(timeout=TIMEOUT)

"""Tasks run here: ``apply``, eager mode, retries, autoretry and the backoff formula."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest

from taskq import App, EagerResult, MaxRetriesExceededError, Retry, Task, states
from taskq.errors import ConfigError
from taskq.task import backoff_delay


class FlakyError(Exception):
    """Raised by the tasks below until they have been retried enough."""


def test_apply_runs_the_task_here_and_returns_an_eager_result(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.apply((2, 3))
    assert isinstance(result, EagerResult)
    assert result.get() == 5
    assert result.state == states.SUCCESS
    assert result.successful()


def test_apply_gives_a_bound_task_an_eager_request(app: App) -> None:
    @app.task(bind=True)
    def whoami(self: Task[[], object]) -> tuple[object, ...]:
        return (self.request.id, self.request.is_eager, self.request.called_directly)

    assert whoami.apply(task_id="abc").get() == ("abc", True, False)


def test_retry_in_eager_mode_runs_the_task_again(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True, max_retries=5)
    def flaky(self: Task[[], str]) -> str:
        attempts.append(self.request.retries)
        if len(attempts) < 3:
            raise self.retry(countdown=10)
        return "done"

    assert flaky.apply().get() == "done"
    assert attempts == [0, 1, 2]


def test_retry_past_max_retries_re_raises_the_exception_given(app: App) -> None:
    @app.task(bind=True, max_retries=2)
    def always(self: Task[[], None]) -> None:
        raise self.retry(exc=FlakyError("still broken"), countdown=0)

    with pytest.raises(FlakyError, match="still broken"):
        always.apply(throw=True)


def test_retry_past_max_retries_without_an_exception_raises_max_retries_exceeded(app: App) -> None:
    runs: list[int] = []

    @app.task(bind=True, max_retries=1)
    def always(self: Task[[], None]) -> None:
        runs.append(self.request.retries)
        raise self.retry(countdown=0)

    with pytest.raises(MaxRetriesExceededError, match="used all 1 retries"):
        always.apply(throw=True)
    assert runs == [0, 1]


def test_retry_max_retries_argument_overrides_the_task_option(app: App) -> None:
    @app.task(bind=True, max_retries=10)
    def once(self: Task[[], None]) -> None:
        raise self.retry(countdown=0, max_retries=0)

    with pytest.raises(MaxRetriesExceededError):
        once.apply(throw=True)


def test_retry_outside_a_worker_re_raises_the_exception(app: App) -> None:
    @app.task(bind=True)
    def direct(self: Task[[], None]) -> None:
        raise self.retry(exc=FlakyError("direct"))

    with pytest.raises(FlakyError, match="direct"):
        direct()


def test_autoretry_for_retries_then_gives_the_original_exception(app: App) -> None:
    runs: list[int] = []

    @app.task(bind=True, autoretry_for=(FlakyError,), max_retries=2)
    def broken(self: Task[[], None]) -> None:
        runs.append(self.request.retries)
        raise FlakyError(f"attempt {len(runs)}")

    result = broken.apply()
    assert runs == [0, 1, 2]
    assert result.state == states.FAILURE
    assert isinstance(result.result, FlakyError)
    with pytest.raises(FlakyError, match="attempt 3"):
        result.get()


def test_autoretry_for_succeeds_once_the_error_stops(app: App) -> None:
    runs: list[int] = []

    @app.task(autoretry_for=(FlakyError,), retry_kwargs={"max_retries": 5})
    def recovers() -> str:
        runs.append(1)
        if len(runs) < 3:
            raise FlakyError
        return "ok"

    assert recovers.apply().get() == "ok"
    assert len(runs) == 3


def test_autoretry_for_does_not_retry_other_exceptions(app: App) -> None:
    runs: list[int] = []

    @app.task(autoretry_for=(FlakyError,), max_retries=3)
    def wrong() -> None:
        runs.append(1)
        raise KeyError("nope")

    assert wrong.apply().failed()
    assert runs == [1]


def test_apply_with_throw_raises_the_task_exception(app: App) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        boom.apply(throw=True)


def test_eager_propagates_setting_makes_apply_raise(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_eager_propagates=True)

    @app.task
    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        boom.apply()


def test_always_eager_runs_delay_here_without_the_broker(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_always_eager=True)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    assert isinstance(result, EagerResult)
    assert result.get() == 5
    assert app.transport.depth("taskq") == 0


def test_direct_call_gives_the_task_a_request_marked_called_directly(app: App) -> None:
    @app.task(bind=True)
    def probe(self: Task[[int], object], x: int) -> object:
        return (self.request.called_directly, list(self.request.args))

    assert probe(7) == (True, [7])


def test_retry_is_a_signal_not_an_error_name() -> None:
    signal = Retry(when=5.0)
    assert str(signal) == "Retry in 5.0s"


# ---- Backoff ------------------------------------------------------------------------------


def test_backoff_without_jitter_doubles_each_retry() -> None:
    assert [backoff_delay(n, 2.0, 600, jitter=False) for n in range(4)] == [2.0, 4.0, 8.0, 16.0]


def test_backoff_is_capped_at_the_maximum() -> None:
    assert backoff_delay(20, 1.0, 600, jitter=False) == 600


def test_backoff_jitter_draws_from_the_random_source_given() -> None:
    drawn = backoff_delay(3, 1.0, 600, jitter=True, rng=random.Random(42))
    assert drawn == random.Random(42).uniform(0, 8.0)
    assert 0 <= drawn <= 8.0


def test_backoff_jitter_stays_under_the_cap() -> None:
    rng = random.Random(7)
    assert all(0 <= backoff_delay(30, 1.0, 10.0, jitter=True, rng=rng) <= 10.0 for _ in range(100))


def test_task_backoff_uses_the_factor_given_as_retry_backoff(app: App) -> None:
    @app.task(retry_backoff=3, retry_jitter=False, retry_backoff_max=20)
    def job() -> None:
        pass

    assert [job.backoff_for(n) for n in range(4)] == [3.0, 6.0, 12.0, 20.0]


def test_task_without_backoff_waits_the_default_retry_delay(app: App) -> None:
    @app.task(default_retry_delay=7)
    def job() -> None:
        pass

    assert job.backoff_for(3) == 7.0


# ---- Arguments checked at send, as Celery's typing=True does ------------------------------


def test_delay_and_apply_async_refuse_arguments_the_function_cannot_take(app: App) -> None:
    @app.task(name="typed.add")
    def add(x: int, y: int) -> int:
        return x + y

    transport = app.transport
    for send in (lambda: add.delay(1), lambda: add.apply_async((1, 2, 3)), lambda: add.apply_async((1,), {"z": 2})):
        with pytest.raises(TypeError, match=r"typed\.add\(x, y\) cannot take"):
            send()
    assert transport.depth("taskq") == 0  # nothing was sent
    add.apply_async((1,), {"y": 2})
    assert transport.depth("taskq") == 1


def test_a_signature_refuses_what_the_function_could_never_take(app: App) -> None:
    @app.task(name="typed.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    assert mul.s(10).args == [10]  # the parent's result comes first, later
    with pytest.raises(TypeError, match="too many positional arguments"):
        mul.s(1, 2, 3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        mul.s(z=1)
    with pytest.raises(TypeError, match="missing a required argument: 'y'"):
        mul.si(1)  # immutable: nothing is added later


def test_a_bound_task_is_checked_without_self_and_typing_false_turns_checks_off(app: App) -> None:
    @app.task(name="typed.bound", bind=True)
    def bound(self, x: int) -> int:  # type: ignore[no-untyped-def]
        return x

    @app.task(name="typed.loose", typing=False)
    def loose(x: int) -> int:
        return x

    bound.delay(1)
    with pytest.raises(TypeError):
        bound.delay(1, 2)
    loose.delay(1, 2, 3)  # as Celery with typing=False: the worker will find out


def test_update_state_shows_a_custom_state_and_meta_while_the_task_runs(
    app: App, start_worker: Callable[..., object], wait_until: Callable[..., None]
) -> None:
    go_on = threading.Event()

    @app.task(name="progress.count", bind=True)
    def count(self, n: int) -> int:  # type: ignore[no-untyped-def]
        for done in range(1, n + 1):
            self.update_state(state="PROGRESS", meta={"done": done, "of": n})
        go_on.wait(10)
        return n

    start_worker(app)
    result = count.delay(3)
    wait_until(lambda: result.state == "PROGRESS", "the custom state")
    assert result.info == {"done": 3, "of": 3}
    assert not result.ready()
    go_on.set()
    assert result.get(timeout=10) == 3
    assert result.state == states.SUCCESS


def test_update_state_needs_a_state_and_outside_a_task_an_id(app: App) -> None:
    @app.task(name="progress.other")
    def other() -> None: ...

    with pytest.raises(ValueError, match="needs a state name"):
        other.update_state(task_id="x", meta={})
    with pytest.raises(ValueError, match="needs task_id"):
        other.update_state(state="PROGRESS")
    other.update_state(task_id="abc", state="PROGRESS", meta={"n": 1})
    assert app.AsyncResult("abc").state == "PROGRESS"
    assert app.AsyncResult("abc").info == {"n": 1}


# ---- Task classes: base=, class-level defaults, handlers called as Celery calls them ------


def test_a_base_class_s_handlers_are_called_where_celery_calls_them(
    app: App, start_worker: Callable[..., object], wait_until: Callable[..., None]
) -> None:
    heard: list[tuple[object, ...]] = []

    class Audited(app.Task):  # type: ignore[name-defined,misc]
        def before_start(self, task_id, args, kwargs):  # type: ignore[no-untyped-def]
            heard.append(("before_start", task_id, tuple(args), dict(kwargs)))

        def on_success(self, retval, task_id, args, kwargs):  # type: ignore[no-untyped-def]
            heard.append(("on_success", retval, task_id))

        def on_failure(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
            heard.append(("on_failure", repr(exc), task_id, einfo.type, "ValueError: no" in einfo.traceback))

        def on_retry(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
            heard.append(("on_retry", repr(exc), task_id))

        def after_return(self, status, retval, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
            heard.append(("after_return", status, repr(retval), task_id, einfo is not None))

    @app.task(name="audited.add", base=Audited)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="audited.fail", base=Audited)
    def fail() -> None:
        raise ValueError("no")

    @app.task(name="audited.again", base=Audited, bind=True, default_retry_delay=0)
    def again(self) -> str:  # type: ignore[no-untyped-def]
        if self.request.retries == 0:
            raise self.retry(exc=KeyError("once"))
        return "done"

    start_worker(app)
    ok = add.delay(2, 3)
    assert ok.get(timeout=10) == 5
    wait_until(lambda: len(heard) == 3, "the success handlers")
    assert heard == [
        ("before_start", ok.id, (2, 3), {}),
        ("on_success", 5, ok.id),
        ("after_return", "SUCCESS", "5", ok.id, False),
    ]
    heard.clear()
    bad = fail.delay()
    with pytest.raises(ValueError, match="no"):
        bad.get(timeout=10)
    wait_until(lambda: len(heard) == 3, "the failure handlers")
    assert heard[1] == ("on_failure", "ValueError('no')", bad.id, ValueError, True)
    assert heard[2] == ("after_return", "FAILURE", "ValueError('no')", bad.id, True)
    heard.clear()
    retried = again.delay()
    assert retried.get(timeout=10) == "done"
    wait_until(lambda: len(heard) == 5, "the retry and success handlers")
    assert [entry[0] for entry in heard] == ["before_start", "on_retry", "before_start", "on_success", "after_return"]
    assert heard[1] == ("on_retry", "KeyError('once')", retried.id)


def test_a_base_class_s_attributes_are_its_tasks_defaults(app: App, start_worker: Callable[..., object]) -> None:
    class Patient(app.Task):  # type: ignore[name-defined,misc]
        autoretry_for = (ConnectionError,)
        max_retries = 2
        default_retry_delay = 0
        retry_jitter = False

    tries: list[int] = []

    @app.task(name="patient.flaky", base=Patient)
    def flaky() -> int:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("down")
        return len(tries)

    @app.task(name="patient.strict", base=Patient, max_retries=0)
    def strict() -> None: ...

    assert isinstance(flaky, Patient) and flaky.max_retries == 2
    assert strict.max_retries == 0  # an option given to @app.task wins
    start_worker(app)
    assert flaky.delay().get(timeout=10) == 3


def test_a_handler_that_raises_is_logged_and_the_outcome_stands(
    app: App, start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture, wait_until: Callable[..., None]
) -> None:
    class Broken(app.Task):  # type: ignore[name-defined,misc]
        def on_success(self, retval, task_id, args, kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("handler bug")

    @app.task(name="broken.one", base=Broken)
    def one() -> int:
        return 1

    start_worker(app)
    assert one.delay().get(timeout=10) == 1
    wait_until(lambda: "the on_success handler of broken.one" in caplog.text, "the handler's error in the log")


def test_base_must_be_a_task_class(app: App) -> None:
    class NotATask:
        pass

    with pytest.raises(ConfigError, match=r"is not a subclass of taskq\.Task"):
        app.task(base=NotATask)(lambda: None)


# ---- task_annotations ----------------------------------------------------------------------


def test_task_annotations_override_a_task_s_options_for_every_task_and_by_name(memory_url: str) -> None:
    failures: list[str] = []

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
        failures.append(self.name)

    app = App(
        "annotated",
        broker=memory_url,
        read_config=False,
        task_annotations={"*": {"rate_limit": "10/s"}, "ann.add": {"max_retries": 7, "on_failure": on_failure}},
    )

    @app.task(name="ann.add", max_retries=1)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="ann.other", rate_limit="1/s")
    def other() -> None: ...

    app.plugins  # noqa: B018 - settles the settings: each task's defaults, annotations first
    assert (add.rate_limit, add.max_retries) == ("10/s", 7)  # annotations win, as in Celery
    assert other.rate_limit == "10/s"
    assert "on_failure" in add.handlers and "on_failure" not in other.handlers
    add.on_failure(ValueError(), "id", (), {}, None)
    assert failures == ["ann.add"]


def test_a_task_annotation_that_is_no_option_is_a_config_error_naming_it(memory_url: str) -> None:
    app = App("annotated", broker=memory_url, read_config=False, task_annotations={"*": {"rate_limt": "1/s"}})

    @app.task(name="ann.x")
    def x() -> None: ...

    with pytest.raises(ConfigError, match=r"task_annotations\['\*'\] sets 'rate_limt'.*did you mean 'rate_limit'"):
        x.resolve_defaults()


# ---- Class-based tasks ----------------------------------------------------------------------


def test_a_class_based_task_is_registered_and_run(app: App, start_worker: Callable[..., object]) -> None:
    class Multiply(app.Task):  # type: ignore[name-defined,misc]
        name = "classy.multiply"
        max_retries = 1

        def run(self, x: int, y: int) -> int:
            return x * y * self.factor()

        def factor(self) -> int:
            return 1

    class Untitled(app.Task):  # type: ignore[name-defined,misc]
        def run(self) -> str:
            return self.name

    multiply = app.register_task(Multiply())
    untitled = app.register_task(Untitled)
    assert app.tasks["classy.multiply"] is multiply and multiply.max_retries == 1
    assert untitled.name.endswith("Untitled")
    with pytest.raises(TypeError, match="cannot take"):
        multiply.delay(1)
    start_worker(app)
    assert multiply.delay(6, 7).get(timeout=10) == 42
    assert untitled.delay().get(timeout=10) == untitled.name
    assert multiply(2, 3) == 6  # a direct call


def test_a_task_class_without_run_cannot_be_registered(app: App) -> None:
    class Empty(app.Task):  # type: ignore[name-defined,misc]
        name = "classy.empty"

    with pytest.raises(TypeError, match="define its run"):
        app.register_task(Empty)

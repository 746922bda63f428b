"""The app: registering tasks, naming them, and what sending puts on the broker."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable

import pytest

from taskq import App, ConfigError, Task, shared_task
from taskq._protocol import decode, from_iso
from taskq.builtins.memory_drivers import MemoryTransport
from taskq.drivers.transport import Delivery

WaitUntil = Callable[..., None]


def claim_one(app: App, queue: str = "taskq") -> Delivery:
    """Take the one due message of ``queue`` through a transport of its own."""
    [delivery] = MemoryTransport(str(app.conf["broker_url"])).claim([queue], 10)
    return delivery


def depth(app: App, queue: str = "taskq") -> int:
    return MemoryTransport(str(app.conf["broker_url"])).depth(queue)


# ---- Registering ----------------------------------------------------------------------


def test_task_decorator_without_arguments_registers_the_function(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert isinstance(add, Task)
    assert app.tasks[add.name] is add
    assert add(2, 3) == 5


def test_task_decorator_with_a_name_and_bind_passes_the_task_in(app: App) -> None:
    @app.task(name="proj.whoami", bind=True)
    def whoami(self: Task[[], str]) -> str:
        return self.name

    assert app.tasks["proj.whoami"] is whoami
    assert whoami() == "proj.whoami"


def test_generated_name_is_module_and_function_name(app: App) -> None:
    @app.task
    def mul(x: int, y: int) -> int:
        return x * y

    assert mul.name == f"{__name__}.mul"


def test_generated_name_of_a_main_module_function_uses_the_app_name(app: App) -> None:
    def job() -> None:
        pass

    job.__module__ = "__main__"
    assert app.task(job).name == "tests.job"


def test_task_keeps_the_function_name_and_docstring(app: App) -> None:
    @app.task
    def documented() -> None:
        """Does things."""

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Does things."


def test_unknown_task_option_is_a_config_error_with_a_suggestion(app: App) -> None:
    with pytest.raises(ConfigError, match=r"unknown task option 'max_retry' for .*did you mean 'max_retries'"):

        @app.task(max_retry=3)
        def job() -> None:
            pass


def test_shared_task_is_registered_on_existing_and_later_apps(app: App) -> None:
    name = f"shared.{uuid.uuid4().hex}"

    @shared_task(name=name)
    def ping() -> str:
        return "pong"

    later = App("later", broker=f"memory://{uuid.uuid4().hex}", read_config=False)
    assert name in app.tasks
    assert name in later.tasks
    assert app.tasks[name] is not later.tasks[name]
    assert ping() == "pong"


def test_shared_task_sends_through_the_current_app(wait_until: WaitUntil) -> None:
    name = f"shared.{uuid.uuid4().hex}"

    @shared_task(name=name)
    def ping() -> str:
        return "pong"

    current = App("current", broker=f"memory://{uuid.uuid4().hex}", read_config=False)
    ping.delay()  # type: ignore[attr-defined]
    assert decode(current.serializers, claim_one(current).message).name == name


# ---- Sending ----------------------------------------------------------------------------


def test_delay_publishes_a_protocol_2_message_on_the_default_queue(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    message = decode(app.serializers, claim_one(app).message)
    assert (message.name, message.id, message.args, message.kwargs) == (add.name, result.id, [2, 3], {})
    assert message.headers["eta"] is None
    assert message.headers["expires"] is None


def test_apply_async_with_a_task_id_and_queue_uses_them(app: App) -> None:
    @app.task
    def job() -> None:
        pass

    job.apply_async(task_id="fixed-id", queue="special")
    assert depth(app, "taskq") == 0
    assert decode(app.serializers, claim_one(app, "special").message).id == "fixed-id"


def test_countdown_holds_the_message_in_the_broker(app: App) -> None:
    @app.task
    def job() -> None:
        pass

    job.apply_async(countdown=3600)
    assert MemoryTransport(str(app.conf["broker_url"])).claim(["taskq"], 10) == []
    assert depth(app) == 1


def test_countdown_sets_the_eta_header_and_the_message_arrives_when_due(app: App, wait_until: WaitUntil) -> None:
    @app.task
    def job() -> None:
        pass

    before = time.time()
    job.apply_async(countdown=0.2)
    after = time.time()
    transport = MemoryTransport(str(app.conf["broker_url"]))
    claimed: list[Delivery] = []
    wait_until(lambda: claimed.extend(transport.claim(["taskq"], 10)) or claimed, "the delayed message")
    eta = decode(app.serializers, claimed[0].message).eta
    assert eta is not None
    assert before + 0.2 <= eta <= after + 0.2


def test_eta_as_a_future_datetime_holds_the_message(app: App) -> None:
    @app.task
    def job() -> None:
        pass

    job.apply_async(eta=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
    assert MemoryTransport(str(app.conf["broker_url"])).claim(["taskq"], 10) == []
    assert depth(app) == 1


def test_eta_as_a_datetime_is_written_as_iso_utc(app: App) -> None:
    @app.task
    def job() -> None:
        pass

    eta = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    job.apply_async(eta=eta)
    message = decode(app.serializers, claim_one(app).message)
    assert message.headers["eta"] == "2020-01-02T03:04:05+00:00"


def test_eta_as_a_timestamp_is_written_as_iso_utc(app: App) -> None:
    @app.task
    def job() -> None:
        pass

    job.apply_async(eta=1_577_934_245.0)
    message = decode(app.serializers, claim_one(app).message)
    assert message.eta == 1_577_934_245.0
    assert message.headers["eta"] == "2020-01-02T03:04:05+00:00"


def test_expires_in_seconds_is_written_as_a_timestamp_from_now(app: App) -> None:
    @app.task
    def job() -> None:
        pass

    before = time.time()
    job.apply_async(expires=60)
    after = time.time()
    expires = from_iso(decode(app.serializers, claim_one(app).message).headers["expires"])
    assert expires is not None
    assert before + 60 <= expires <= after + 60


def test_expires_as_a_datetime_is_written_as_iso_utc(app: App) -> None:
    @app.task
    def job() -> None:
        pass

    job.apply_async(expires=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC))
    assert decode(app.serializers, claim_one(app).message).headers["expires"] == "2030-01-01T00:00:00+00:00"


def test_task_level_expires_and_queue_apply_by_default(app: App) -> None:
    @app.task(expires=60, queue="slow")
    def job() -> None:
        pass

    job.delay()
    assert decode(app.serializers, claim_one(app, "slow").message).headers["expires"] is not None


def test_ignore_result_header_follows_the_settings_on_a_fresh_app(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_ignore_result=True)

    @app.task
    def job() -> None:
        pass

    job.delay()
    assert decode(app.serializers, claim_one(app).message).headers["ignore_result"] is True


def test_unknown_send_option_is_a_type_error(app: App) -> None:
    with pytest.raises(TypeError, match="unknown option"):
        app.send_task("proj.add", (1,), colour="red")


def test_celery_only_send_options_are_accepted_and_ignored(app: App) -> None:
    app.send_task("proj.add", (1,), exchange_type="direct", mandatory=True, retry=True, retry_policy={})
    assert depth(app) == 1


def test_a_broker_url_without_a_scheme_is_a_config_error() -> None:
    app = App("tests", broker="localhost:6379", read_config=False)
    with pytest.raises(ConfigError, match="is not a URL"):
        app.send_task("proj.add")


# ---- Routing ------------------------------------------------------------------------------


def test_task_routes_send_an_exactly_named_task_to_its_queue(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_routes={"proj.add": "math"})
    app.send_task("proj.add", (1, 2))
    app.send_task("proj.other")
    assert depth(app, "math") == 1
    assert depth(app, "taskq") == 1


def test_task_routes_match_glob_patterns_and_queue_mappings(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_routes={"proj.mail.*": {"queue": "mail"}})
    app.send_task("proj.mail.send")
    app.send_task("proj.mailbox")
    assert depth(app, "mail") == 1
    assert depth(app, "taskq") == 1


def test_explicit_queue_wins_over_task_routes(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_routes={"proj.add": "math"})
    app.send_task("proj.add", queue="urgent")
    assert depth(app, "urgent") == 1


def test_default_queue_setting_is_used_without_a_route(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_default_queue="main")
    app.send_task("proj.add")
    assert depth(app, "main") == 1

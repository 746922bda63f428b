"""Routing: declared queues and exchanges, AMQP's matching rules, and where a send goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from taskq import App, ConfigError
from taskq.builtins.memory_drivers import MemoryTransport
from taskq.errors import RoutingError
from taskq.routing import (
    Binding,
    Exchange,
    Queue,
    Routing,
    as_queue,
    topic_matches,
    worker_direct,
)

if TYPE_CHECKING:
    from conftest import WorkerThread


StartWorker = Callable[..., "WorkerThread"]


def depth(app: App, queue: str) -> int:
    return MemoryTransport(str(app.conf["broker_url"])).depth(queue)


def claim(app: App, queue: str) -> list[object]:
    return [d.message for d in MemoryTransport(str(app.conf["broker_url"])).claim([queue], 10)]


def routing(**settings: object) -> Routing:
    return App("tests", broker="memory://routing", read_config=False, **settings).routing


class KombuLikeExchange:
    """kombu's Exchange, as far as taskq reads it (attributes only)."""

    def __init__(self, name: str, type: str = "direct") -> None:  # noqa: A002 - kombu's name
        self.name, self.type, self.durable, self.auto_delete, self.arguments = name, type, True, False, None


class KombuLikeQueue:
    """kombu's Queue, as far as taskq reads it (attributes only)."""

    def __init__(self, name: str, exchange: KombuLikeExchange | None = None, routing_key: str = "") -> None:
        self.name, self.exchange, self.routing_key = name, exchange or KombuLikeExchange(""), routing_key
        self.bindings: set[object] = set()
        self.queue_arguments, self.max_priority = None, None


class Broadcast(KombuLikeQueue):
    """kombu's Broadcast, by class name."""

    alias: str | None = None


# ---- Declarations ---------------------------------------------------------------------------


def test_a_queue_without_exchange_gets_a_direct_exchange_of_its_name_and_its_name_as_key() -> None:
    queue = Queue("mail")
    assert (queue.exchange, queue.routing_key) == (Exchange("mail", "direct"), "mail")


def test_a_queue_given_an_exchange_by_name_is_bound_by_its_own_name() -> None:
    queue = Queue("mail", "jobs")
    assert queue.bindings == (Binding(Exchange("jobs"), "mail"),)


def test_kombu_queues_are_read_by_their_attributes() -> None:
    queue = as_queue(KombuLikeQueue("hi", KombuLikeExchange("jobs", "topic"), "jobs.hi.#"), "task_queues[0]")
    assert queue == Queue("hi", Exchange("jobs", "topic"), "jobs.hi.#")


def test_a_kombu_queue_without_exchange_gets_one_of_its_own_name() -> None:
    assert as_queue(KombuLikeQueue("hi"), "task_queues[0]") == Queue("hi")


def test_toml_tables_and_names_declare_queues() -> None:
    table = {"name": "hi", "exchange": "jobs", "exchange_type": "topic", "routing_key": "jobs.hi.#"}
    assert as_queue(table, "task_queues[0]") == Queue("hi", Exchange("jobs", "topic"), "jobs.hi.#")
    assert as_queue("mail", "task_queues[1]") == Queue("mail")


def test_an_unknown_exchange_type_is_a_config_error_naming_the_types() -> None:
    with pytest.raises(ConfigError, match="use one of direct, topic, fanout"):
        Exchange("jobs", "headers")


def test_a_queue_table_with_an_unknown_key_is_a_config_error_listing_the_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'exchage'.*a queue has .*exchange"):
        routing(task_queues=[{"name": "hi", "exchage": "jobs"}])


def test_one_exchange_declared_with_two_types_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="declared as topic and, by queue 'b', as direct"):
        routing(task_queues=[Queue("a", Exchange("jobs", "topic"), "a.#"), Queue("b", Exchange("jobs"), "b")])


def test_kombus_broadcast_is_read_by_its_alias_with_its_fanout_exchange() -> None:
    kombu_style = Broadcast("bcast.4f1c", KombuLikeExchange("news", "fanout"))
    kombu_style.alias = "news"  # kombu's Broadcast("news"): its name is this process's own queue
    table = routing(task_queues=[kombu_style])
    assert list(table.queues) == ["news"]
    assert table.queues["news"].broadcast
    assert table.broadcast_of("news") == ("news", table.default_routing_key)  # Celery's key
    assert table.worker_queues() == ["news"]


def test_a_broadcast_queue_is_declared_by_class_or_table() -> None:
    from taskq.routing import Broadcast as TaskqBroadcast

    declared = TaskqBroadcast("reload")
    assert declared.exchange == Exchange("reload", "fanout")
    assert repr(declared).startswith("Broadcast(")
    table = routing(
        task_queues=[declared, {"name": "news", "broadcast": True, "exchange": "wire", "routing_key": "n"}],
        task_default_queue="jobs",
    )
    assert table.broadcast_of("reload") == ("reload", "jobs")
    assert table.broadcast_of("news") == ("wire", "n")
    assert table.broadcast_of("celery") is None


def test_a_send_to_a_broadcast_queue_or_its_exchange_says_it_is_one() -> None:
    from taskq.routing import Broadcast as TaskqBroadcast

    table = routing(task_queues=[Queue("celery"), TaskqBroadcast("reload")])
    assert table.route("t", queue="reload").broadcast
    assert table.route("t", exchange="reload").broadcast
    assert not table.route("t", queue="celery").broadcast
    assert not table.route("t").broadcast


def test_a_broadcast_queue_needs_a_fanout_exchange() -> None:
    with pytest.raises(ConfigError, match="must be a fanout exchange"):
        Queue("reload", Exchange("reload", "direct"), broadcast=True)
    with pytest.raises(ConfigError, match="a broadcast queue has no other bindings"):
        routing(task_queues=[{"name": "news", "broadcast": True, "bindings": [{"exchange": "x", "routing_key": ""}]}])


def test_a_kombu_broadcast_without_a_name_is_a_config_error() -> None:
    nameless = Broadcast("bcast.4f1c", KombuLikeExchange("news", "fanout"))
    nameless.alias = None
    with pytest.raises(ConfigError, match="a Broadcast queue needs a name"):
        routing(task_queues=[nameless])


def test_task_queues_must_be_a_list() -> None:
    with pytest.raises(ConfigError, match="task_queues is a list"):
        routing(task_queues="hi")


# ---- Matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("binding", "key", "matches"),
    [
        ("jobs.hi", "jobs.hi", True),
        ("jobs.*", "jobs.hi", True),
        ("jobs.*", "jobs.hi.now", False),
        ("jobs.*", "jobs", False),
        ("jobs.#", "jobs", True),
        ("jobs.#", "jobs.hi.now", True),
        ("#.now", "jobs.hi.now", True),
        ("#", "anything.at.all", True),
        ("*.hi.#", "jobs.hi", True),
        ("*.hi.#", "hi", False),
        ("jobs.#.now", "jobs.now", True),
        ("jobs.#.now", "jobs.a.b.now", True),
        ("jobs.#.now", "jobs.a.b.later", False),
    ],
)
def test_topic_bindings_match_words_as_amqp_does(binding: str, key: str, matches: bool) -> None:
    assert topic_matches(binding, key) is matches


def test_a_topic_exchange_reaches_every_queue_whose_binding_matches() -> None:
    table = routing(
        task_queues=[
            Queue("hi", Exchange("jobs", "topic"), "jobs.hi.#"),
            Queue("all", Exchange("jobs", "topic"), "jobs.#"),
            Queue("lo", Exchange("jobs", "topic"), "jobs.lo.*"),
        ]
    )
    assert table.resolve("jobs", "jobs.hi.x") == ("hi", "all")
    assert table.resolve("jobs", "other") == ()


def test_a_direct_exchange_reaches_the_queues_bound_with_exactly_the_key() -> None:
    table = routing(task_queues=[Queue("a", "jobs", "k"), Queue("b", "jobs", "k"), Queue("c", "jobs", "other")])
    assert table.resolve("jobs", "k") == ("a", "b")


def test_a_fanout_exchange_reaches_every_bound_queue_whatever_the_key() -> None:
    news = Exchange("news", "fanout")
    table = routing(task_queues=[Queue("a", news), Queue("b", news)])
    assert table.resolve("news", "whatever") == ("a", "b")


def test_the_default_exchange_reaches_the_queue_named_by_the_key() -> None:
    assert routing().resolve("", "mail") == ("mail",)


def test_an_undeclared_exchange_is_the_automatic_one_of_the_queue_of_its_name() -> None:
    table = routing()
    assert (table.resolve("mail", "mail"), table.resolve("mail", "other")) == (("mail",), ())


def test_the_worker_direct_exchange_reaches_the_named_workers_queue() -> None:
    assert routing().resolve("C.dq2", "w1@host") == ("w1@host.dq2",)


def test_worker_direct_names_the_queue_as_celery_does() -> None:
    assert worker_direct("w1@host") == Queue("w1@host.dq2", Exchange("C.dq2"), "w1@host")


# ---- Sending --------------------------------------------------------------------------------


@pytest.fixture
def jobs_app(memory_url: str) -> App:
    return App(
        "tests",
        broker=memory_url,
        read_config=False,
        task_queues=[
            Queue("hi", Exchange("jobs", "topic"), "jobs.hi.#"),
            Queue("all", Exchange("jobs", "topic"), "jobs.#"),
        ],
    )


def test_a_send_to_a_topic_exchange_puts_one_copy_in_each_queue_reached(jobs_app: App) -> None:
    result = jobs_app.send_task("proj.add", (1, 2), exchange="jobs", routing_key="jobs.hi.now")
    [hi] = claim(jobs_app, "hi")
    [every] = claim(jobs_app, "all")
    assert hi.headers["id"] == every.headers["id"] == result.id


def test_a_routed_message_carries_its_exchange_and_key_in_delivery_info(jobs_app: App) -> None:
    jobs_app.send_task("proj.add", exchange="jobs", routing_key="jobs.hi.now")
    [message] = claim(jobs_app, "hi")
    assert message.properties["delivery_info"] == {"exchange": "jobs", "routing_key": "jobs.hi.now"}


def test_a_send_by_queue_name_reaches_that_queue_alone(jobs_app: App) -> None:
    jobs_app.send_task("proj.add", queue="hi")
    assert (depth(jobs_app, "hi"), depth(jobs_app, "all")) == (1, 0)


def test_a_send_that_reaches_no_queue_is_refused_with_advice(jobs_app: App) -> None:
    with pytest.raises(RoutingError, match=r"reaches no queue .*binds the keys 'jobs.#', 'jobs.hi.#'"):
        jobs_app.send_task("proj.add", exchange="jobs", routing_key="other")


def test_a_send_to_an_exchange_no_queue_is_bound_to_is_refused(app: App) -> None:
    with pytest.raises(RoutingError, match="no queue in task_queues is bound to the exchange 'nowhere'"):
        app.send_task("proj.add", exchange="nowhere", routing_key="x")


def test_task_drop_unroutable_drops_what_reaches_no_queue(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_drop_unroutable=True)
    app.send_task("proj.add", exchange="nowhere", routing_key="x")
    assert depth(app, "taskq") == 0


def test_a_routing_key_alone_names_the_queue_as_before(app: App) -> None:
    app.send_task("proj.add", routing_key="mail")
    assert depth(app, "mail") == 1


def test_a_routing_key_alone_goes_through_task_default_exchange_when_set(memory_url: str) -> None:
    app = App(
        "tests",
        broker=memory_url,
        read_config=False,
        task_default_exchange="jobs",
        task_default_exchange_type="topic",
        task_queues=[Queue("hi", Exchange("jobs", "topic"), "jobs.hi.#")],
    )
    app.send_task("proj.add", routing_key="jobs.hi.x")
    assert depth(app, "hi") == 1


def test_task_routes_may_route_through_an_exchange(jobs_app: App) -> None:
    jobs_app.conf.update(task_routes={"proj.*": {"exchange": "jobs", "routing_key": "jobs.hi.1"}})
    jobs_app.send_task("proj.add")
    assert (depth(jobs_app, "hi"), depth(jobs_app, "all")) == (1, 1)


def test_a_route_with_an_unknown_key_is_a_config_error(app: App) -> None:
    app.conf.update(task_routes={"proj.*": {"queue": "a", "priorty": 1}})
    with pytest.raises(ConfigError, match=r"unknown key.*'priorty'"):
        app.send_task("proj.add")


def test_a_router_function_sees_the_arguments_and_picks_the_queue(app: App) -> None:
    def by_size(name: str, args: list[int], kwargs: object, options: object, task: object = None) -> object:
        return "big" if args and args[0] > 10 else None

    app.conf.update(task_routes=[by_size, {"proj.*": "small"}])
    app.send_task("proj.add", (100,))
    app.send_task("proj.add", (1,))
    assert (depth(app, "big"), depth(app, "small")) == (1, 1)


def test_a_router_class_with_route_for_task_is_asked_as_celery_asks_it(app: App) -> None:
    class Router:
        def route_for_task(self, task: str, args: object = None, kwargs: object = None) -> object:
            return {"queue": "classy"} if task == "proj.add" else None

    app.conf.update(task_routes=(Router(),))
    app.send_task("proj.add")
    assert depth(app, "classy") == 1


def test_a_router_named_by_dotted_path_that_cannot_be_imported_is_a_config_error(app: App) -> None:
    app.conf.update(task_routes=["no_such_module.router"])
    with pytest.raises(ConfigError, match="cannot be imported"):
        app.send_task("proj.add")


def test_a_queue_not_declared_is_refused_when_missing_queues_are_not_created(memory_url: str) -> None:
    app = App("tests", broker=memory_url, read_config=False, task_queues=["a"], task_create_missing_queues=False)
    with pytest.raises(RoutingError, match=r"'b' is not declared in task_queues .*task_create_missing_queues = true"):
        app.send_task("proj.add", queue="b")


def test_a_send_to_a_worker_direct_queue_object_reaches_that_workers_queue(app: App) -> None:
    app.send_task("proj.add", queue=worker_direct("w1@host"))
    [message] = claim(app, "w1@host.dq2")
    assert message.properties["delivery_info"] == {"exchange": "C.dq2", "routing_key": "w1@host"}


def test_a_task_of_a_workflow_routed_to_several_queues_is_held_with_the_others(jobs_app: App) -> None:
    from taskq.sending import publishing_together

    with publishing_together():
        jobs_app.send_task("proj.add", exchange="jobs", routing_key="jobs.hi.1")
        assert depth(jobs_app, "hi") == 0
    assert (depth(jobs_app, "hi"), depth(jobs_app, "all")) == (1, 1)


# ---- Workers --------------------------------------------------------------------------------


def test_a_worker_consumes_every_declared_queue_by_default() -> None:
    assert routing(task_queues=["a", "b"]).worker_queues() == ["a", "b"]


def test_a_worker_without_task_queues_consumes_the_default_queue() -> None:
    assert routing().worker_queues() == ["taskq"]


def test_dash_q_selects_and_dash_x_excludes() -> None:
    table = routing(task_queues=["a", "b", "c"])
    assert (table.worker_queues(["c", "new"]), table.worker_queues(None, ["b"])) == (["c", "new"], ["a", "c"])


def test_excluding_every_queue_is_refused() -> None:
    with pytest.raises(RoutingError, match="would consume no queue: -X a excludes all of a"):
        routing(task_queues=["a"]).worker_queues(None, ["a"])


def test_dash_q_naming_an_undeclared_queue_is_refused_without_create_missing_queues() -> None:
    with pytest.raises(RoutingError, match="'z' is not declared"):
        routing(task_queues=["a"], task_create_missing_queues=False).worker_queues(["z"])


def test_worker_direct_adds_the_workers_own_queue() -> None:
    assert routing().worker_queues(hostname="w1@host", direct=True) == ["taskq", "w1@host.dq2"]


def test_the_bindings_a_broker_must_hold_are_those_beyond_the_queues_own_exchange() -> None:
    table = routing(task_queues=[Queue("hi", Exchange("jobs", "topic"), "jobs.hi.#"), Queue("plain")])
    assert table.bindings_of("hi") == [("jobs", "topic", "jobs.hi.#")]
    assert table.bindings_of("plain") == []
    assert table.bindings_of("w1@host.dq2") == [("C.dq2", "direct", "w1@host")]


def test_a_worker_runs_a_task_sent_through_a_topic_exchange(memory_url: str, start_worker: StartWorker) -> None:
    app = App(
        "tests",
        broker=memory_url,
        read_config=False,
        task_queues=[
            Queue("hi", Exchange("jobs", "topic"), "jobs.hi.#"),
            Queue("lo", Exchange("jobs", "topic"), "jobs.lo.#"),
        ],
    )

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    worker = start_worker(app)
    assert worker.worker.queues == ["hi", "lo"]
    assert add.apply_async((2, 3), exchange="jobs", routing_key="jobs.lo.now").get(timeout=10) == 5


def test_a_worker_direct_worker_runs_what_is_sent_to_its_own_queue(memory_url: str, start_worker: StartWorker) -> None:
    app = App("tests", broker=memory_url, read_config=False, worker_direct=True)

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    start_worker(app, hostname="w1@host", queues=["elsewhere"])
    assert add.apply_async((1, 1), queue=worker_direct("w1@host")).get(timeout=10) == 2
    assert add.apply_async((2, 2), exchange="C.dq2", routing_key="w1@host").get(timeout=10) == 4


def test_task_queues_may_be_a_json_list_of_tables_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_TASK_QUEUES", '[{"name": "hi", "exchange": "jobs", "exchange_type": "topic"}]')
    assert routing().queues["hi"] == Queue("hi", Exchange("jobs", "topic"))

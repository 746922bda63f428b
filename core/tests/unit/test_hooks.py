"""Every hook of taskq.hookspecs fires where its docstring says, with the arguments it names.

One ``test_hook_<name>`` per hook; ``test_hookspecs.py`` checks that none is missing.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
import pytest

import taskq.plugins
from taskq import App, Task, states
from taskq.builtins.memory_drivers import MemoryBackend, MemoryTransport
from taskq.drivers.backend import ResultBackend
from taskq.drivers.bootstep import Step
from taskq.drivers.serializer import Serializer
from taskq.drivers.transport import Message
from taskq.errors import PluginError
from taskq.worker.commands import CONTROL, CommandError, ControlState, command
from taskq.worker.worker import select_pool
from taskq_solo.pool import SoloPool

if TYPE_CHECKING:
    from taskq.result import AsyncResult

MakePlugin = Callable[..., types.ModuleType]
StartWorker = Callable[..., Any]
WaitUntil = Callable[..., None]
TIMEOUT = 10.0  # seconds


class FlakyError(Exception):
    """Raised by the retrying task below."""


def hooked_app(memory_url: str, plugin: types.ModuleType, **settings: object) -> App:
    return App("tests", broker=memory_url, read_config=False, extra_plugins=[plugin], **settings)


# ---- Drivers ------------------------------------------------------------------------------


def test_hook_taskq_register_transports(make_plugin: MakePlugin) -> None:
    plugin = make_plugin(
        "faketransport", taskq_register_transports=lambda: {"fake": "taskq.builtins.memory_drivers:MemoryTransport"}
    )
    app = App("tests", broker="fake://somewhere", read_config=False, extra_plugins=[plugin])
    transport = app.new_transport()
    assert isinstance(transport, MemoryTransport)
    assert transport.url == "fake://somewhere"


def test_hook_taskq_register_result_backends(make_plugin: MakePlugin, memory_url: str) -> None:
    plugin = make_plugin(
        "fakebackend", taskq_register_result_backends=lambda: {"fakedb": "taskq.builtins.memory_drivers:MemoryBackend"}
    )
    app = App("tests", broker=memory_url, backend="fakedb://results", read_config=False, extra_plugins=[plugin])
    assert isinstance(app.backend, MemoryBackend)
    assert isinstance(app.backend, ResultBackend)
    assert app.backend.url == "fakedb://results"


class FancyScheduler:
    """A scheduler class a plugin offers, found by its import string."""


def test_hook_taskq_register_pools(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    plugin = make_plugin("inlinepool", taskq_register_pools=lambda: {"inline": "taskq_solo.pool:SoloPool"})
    app = hooked_app(memory_url, plugin)
    name, cls = select_pool(app.plugins, "inline")
    assert (name, cls.__name__) == ("inline", "SoloPool")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    runner = start_worker(app, pool="inline")
    assert runner.worker.pool_name == "inline"
    assert add.delay(1, 2).get(timeout=TIMEOUT) == 3


def test_hook_taskq_register_schedulers(make_plugin: MakePlugin) -> None:
    plugin = make_plugin("sched", taskq_register_schedulers=lambda: {"fancy": f"{__name__}:FancyScheduler"})
    plugins = taskq.plugins.load_plugins(extra=[plugin])
    assert plugins.resolve_driver("schedulers", "fancy") is FancyScheduler


UPPER = Serializer(
    "upperjson",
    "application/x-upper-json",
    "utf-8",
    lambda value: __import__("json").dumps(value).encode(),
    lambda data: __import__("json").loads(data),
)


def test_hook_taskq_register_serializers(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    plugin = make_plugin("upper", taskq_register_serializers=lambda: {"upperjson": UPPER})
    app = hooked_app(memory_url, plugin, task_serializer="upperjson", accept_content=["json", "upperjson"])

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(2, 2)
    [delivery] = MemoryTransport(memory_url).claim(["taskq"], 1)
    assert delivery.message.content_type == "application/x-upper-json"
    MemoryTransport(memory_url).requeue([delivery])
    start_worker(app)
    assert add.delay(2, 3).get(timeout=TIMEOUT) == 5


class RecordingStep(Step):
    """A plugin's bootstep: records when the worker starts and stops it."""

    name = "recording"
    requires = ("consumer",)
    events: list[str] = []

    def start(self) -> None:
        RecordingStep.events.append(f"start:{self.worker.hostname}")

    def stop(self) -> None:
        RecordingStep.events.append("stop")


def test_hook_taskq_register_bootsteps(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    RecordingStep.events = []
    plugin = make_plugin("steps", taskq_register_bootsteps=lambda: {"worker": [f"{__name__}:RecordingStep"]})
    app = hooked_app(memory_url, plugin)
    runner = start_worker(app, hostname="steps@test")
    names = [step.name for step in runner.worker.blueprint.steps]
    assert names.index("recording") > names.index("consumer")
    assert RecordingStep.events == ["start:steps@test"]
    runner.stop()
    assert RecordingStep.events == ["start:steps@test", "stop"]


@click.command("hello")
def hello_command() -> None:
    """A plugin's subcommand."""
    click.echo("hello")


def test_hook_taskq_register_commands(make_plugin: MakePlugin) -> None:
    plugin = make_plugin("cmds", taskq_register_commands=lambda: {"hello": f"{__name__}:hello_command"})
    plugins = taskq.plugins.load_plugins(extra=[plugin])
    assert plugins.drivers("commands")["hello"].plugin == "cmds"
    assert plugins.resolve_driver("commands", "hello") is hello_command


@command(kind=CONTROL)
def shout(state: ControlState, word: object = "hi") -> object:
    """A plugin's remote control command: answers with the word, louder, and the worker's name."""
    if not isinstance(word, str):
        raise CommandError("word must be text")
    return {"ok": f"{word.upper()} from {state.hostname}"}


def test_hook_taskq_register_control_commands(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker
) -> None:
    plugin = make_plugin("shouting", taskq_register_control_commands=lambda: [shout])
    app = hooked_app(memory_url, plugin)
    start_worker(app, hostname="loud@test")
    replies = app.control.broadcast("shout", {"word": "hey"}, reply=True, timeout=TIMEOUT, limit=1)
    assert replies == [{"loud@test": {"ok": "HEY from loud@test"}}]
    assert app.control.broadcast("shout", {"word": 3}, reply=True, timeout=TIMEOUT, limit=1) == [
        {"loud@test": {"error": "word must be text"}}
    ]


def test_a_control_command_that_is_not_a_command_names_the_fix(make_plugin: MakePlugin) -> None:
    plugin = make_plugin("wrong", taskq_register_control_commands=lambda: [lambda state: None])
    plugins = taskq.plugins.load_plugins(extra=[plugin])
    with pytest.raises(PluginError, match="command decorator"):
        plugins.control_commands()


# ---- Start-up -------------------------------------------------------------------------------


class StopBeforeTheApp(BaseException):
    """Raised from the early-init hook to end the command before it imports any app."""


def test_hook_taskq_early_init(make_plugin: MakePlugin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[object, list[str]]] = []

    def early_init(pool: str | None, argv: list[str]) -> None:
        calls.append((pool, list(argv)))
        raise StopBeforeTheApp

    plugin = make_plugin("early", taskq_early_init=early_init)
    if importlib.util.find_spec("taskq.cli.main") is None:
        plugins = taskq.plugins.load_plugins(extra=[plugin])
        with pytest.raises(StopBeforeTheApp):
            plugins.early_init("solo", ["worker", "--pool", "solo"])
    else:
        from taskq.cli.main import main

        real_load = taskq.plugins.load_plugins
        monkeypatch.setattr(
            taskq.plugins, "load_plugins", lambda *args, **kwargs: real_load(*args, **kwargs, extra=[plugin])
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr("sys.argv", ["taskq", "worker", "--pool", "solo"])
        with pytest.raises(StopBeforeTheApp):
            main(["worker", "--pool", "solo"])
    assert calls == [("solo", ["worker", "--pool", "solo"])]


def test_hook_taskq_app_configured(make_plugin: MakePlugin, memory_url: str) -> None:
    seen: list[App] = []
    plugin = make_plugin("configured", taskq_app_configured=lambda app: seen.append(app))
    app = hooked_app(memory_url, plugin, task_default_queue="q1")
    assert seen == []  # plugins load lazily
    _ = app.plugins
    _ = app.serializers
    app.send_task("proj.x")
    assert seen == [app]
    assert seen[0].conf["task_default_queue"] == "q1"


CLI_APP = """
from taskq import App, hookimpl

seen = []


class Plugin:
    @hookimpl
    def taskq_cli_app_loaded(self, app, options):
        seen.append((app.main, dict(options)))


app = App("cliapp", broker="memory://", read_config=False, extra_plugins=[Plugin()])
"""


def test_hook_taskq_cli_app_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskq.cli.state import CLIState

    name = f"hooks_cli_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(CLI_APP, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    state = CLIState(f"{name}:app", None)  # what the click group and the worker's quick path both make
    try:
        app = state.app
        assert state.app is app  # loaded once, told once
        assert sys.modules[name].seen == [("cliapp", {"app": f"{name}:app", "config": None})]
    finally:
        sys.modules.pop(name, None)


@pytest.fixture
def task_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a module of the test's own, importable and not yet imported."""
    name = f"hooks_tasks_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("IMPORTED = True\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_hook_taskq_before_import_modules(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, task_module: str
) -> None:
    seen: list[tuple[str, bool]] = []
    plugin = make_plugin(
        "importing", taskq_before_import_modules=lambda app: seen.append((app.main, task_module in sys.modules))
    )
    app = hooked_app(memory_url, plugin, imports=[task_module])
    start_worker(app)
    assert seen == [("tests", False)]  # before the module was imported
    assert task_module in sys.modules
    app.import_task_modules()  # once per app: beat in the same worker (-B) asks again
    assert seen == [("tests", False)]


# ---- Worker lifecycle -----------------------------------------------------------------------


def test_hook_taskq_before_worker_setup(make_plugin: MakePlugin, memory_url: str) -> None:
    seen: list[tuple[object, ...]] = []

    def before_setup(worker: Any, options: dict[str, object]) -> None:
        seen.append((worker.hostname, hasattr(worker, "pool"), options["pool"], options["concurrency"]))
        worker.app.conf.update(worker_prefetch_multiplier=7, task_default_queue="from-the-hook")

    plugin = make_plugin(
        "setup", taskq_before_worker_setup=before_setup, taskq_worker_init=lambda: seen.append(("init",))
    )
    app = hooked_app(memory_url, plugin)
    worker = app.Worker(pool="solo", hostname="setup@test")
    assert seen == [("setup@test", False, "solo", None), ("init",)]  # before anything was set up
    assert (worker.prefetch_multiplier, worker.queues) == (7, ["from-the-hook"])  # what it changed was read


def test_hook_taskq_after_worker_setup(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, task_module: str
) -> None:
    seen: list[tuple[object, ...]] = []

    def after_setup(worker: Any) -> None:
        seen.append(("after setup", worker.hostname, task_module in sys.modules, worker.consumer))
        worker.queues.append("added")

    plugin = make_plugin(
        "setup",
        taskq_after_worker_setup=after_setup,
        taskq_worker_init=lambda: seen.append(("init",)),
        taskq_worker_ready=lambda: seen.append(("ready",)),
    )
    app = hooked_app(memory_url, plugin, imports=[task_module])

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    start_worker(app, hostname="setup@test")
    assert seen == [("init",), ("after setup", "setup@test", True, None), ("ready",)]
    assert add.apply_async((1, 2), queue="added").get(timeout=TIMEOUT) == 3  # the queue it added is consumed


def test_hook_taskq_worker_init(make_plugin: MakePlugin, memory_url: str) -> None:
    seen: list[object] = []
    plugin = make_plugin("init", taskq_worker_init=lambda worker: seen.append(worker))
    app = hooked_app(memory_url, plugin)
    worker = app.Worker(pool="solo")
    assert seen == [worker]
    assert not worker.ready.is_set()


def test_hook_taskq_worker_ready(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    seen: list[tuple[object, bool]] = []
    plugin = make_plugin("ready", taskq_worker_ready=lambda worker: seen.append((worker, worker.consumer is not None)))
    app = hooked_app(memory_url, plugin)
    runner = start_worker(app)
    assert seen == [(runner.worker, True)]


def test_hook_taskq_worker_shutdown(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    events: list[str] = []
    plugin = make_plugin(
        "lifecycle",
        taskq_worker_init=lambda worker: events.append("init"),
        taskq_worker_ready=lambda worker: events.append("ready"),
        taskq_worker_shutdown=lambda worker: events.append(f"shutdown:{worker.stopped.is_set()}"),
    )
    app = hooked_app(memory_url, plugin)
    runner = start_worker(app)
    assert events == ["init", "ready"]
    runner.stop()
    assert events == ["init", "ready", "shutdown:False"]


def test_hook_taskq_worker_shutting_down(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    events: list[tuple[str, bool]] = []
    plugin = make_plugin(
        "stopping", taskq_worker_shutting_down=lambda worker, cold: events.append((worker.hostname, cold))
    )
    app = hooked_app(memory_url, plugin)
    runner = start_worker(app, hostname="stop@test")
    runner.worker.stop()  # type: ignore[attr-defined]
    runner.worker.stop()  # type: ignore[attr-defined]  # asked again, still warm: nothing new
    runner.worker.stop(cold=True)  # type: ignore[attr-defined]
    assert events == [("stop@test", False), ("stop@test", True)]


class ProcessLikePool(SoloPool):
    """A solo pool that calls the worker's before_create_process, process_init and
    process_shutdown as a pool of processes does for each of its children (prefork's own
    test runs real ones)."""

    def start(self) -> None:
        super().start()
        if self.before_create_process is not None:
            self.before_create_process()
        if self.process_init is not None:
            self.process_init()

    def stop(self, *, wait: bool = True) -> None:
        if self.process_shutdown is not None:
            self.process_shutdown()
        super().stop(wait=wait)


def test_hook_taskq_before_create_process(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    events: list[tuple[str, object]] = []
    plugin = make_plugin(
        "processes",
        taskq_register_pools=lambda: {"proclike": f"{__name__}:ProcessLikePool"},
        taskq_before_create_process=lambda worker: events.append(("before create", type(worker.pool).__name__)),
        taskq_worker_process_init=lambda: events.append(("init", None)),
    )
    app = hooked_app(memory_url, plugin)
    start_worker(app, pool="proclike")
    assert events == [("before create", "ProcessLikePool"), ("init", None)]


def test_hook_taskq_worker_process_init(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    events: list[str] = []
    plugin = make_plugin(
        "processes",
        taskq_register_pools=lambda: {"proclike": f"{__name__}:ProcessLikePool"},
        taskq_worker_process_init=lambda worker: events.append(f"init {worker.hostname}"),
    )
    app = hooked_app(memory_url, plugin)
    start_worker(app, pool="proclike", hostname="procs@test")
    assert events == ["init procs@test"]


def test_hook_taskq_worker_process_shutdown(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker
) -> None:
    events: list[tuple[str, int]] = []
    plugin = make_plugin(
        "processes",
        taskq_register_pools=lambda: {"proclike": f"{__name__}:ProcessLikePool"},
        taskq_worker_process_shutdown=lambda worker, pid: events.append((worker.hostname, pid)),
    )
    app = hooked_app(memory_url, plugin)
    runner = start_worker(app, pool="proclike", hostname="procs@test")
    runner.stop()
    assert events == [("procs@test", os.getpid())]


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_hook_taskq_setup_logging(make_plugin: MakePlugin, memory_url: str, root_logging: logging.Logger) -> None:
    from taskq.cli.worker import configure_logging

    calls: list[tuple[str, str]] = []
    plugin = make_plugin("mylogs", taskq_setup_logging=lambda loglevel, format: calls.append((loglevel, format)))  # noqa: A006 - the hook's name
    app = hooked_app(memory_url, plugin, worker_log_format="%(message)s")
    before = root_logging.handlers[:]
    configure_logging(app, "DEBUG")
    assert calls == [("DEBUG", "%(message)s")]
    assert root_logging.handlers == before  # the plugin's to set up, not the worker's


def test_hook_taskq_after_setup_logger(make_plugin: MakePlugin, memory_url: str, root_logging: logging.Logger) -> None:
    from taskq.cli.worker import configure_logging

    extra = logging.NullHandler()
    plugin = make_plugin("addhandler", taskq_after_setup_logger=lambda logger, loglevel: logger.addHandler(extra))
    app = hooked_app(memory_url, plugin)
    configure_logging(app, "WARNING")
    assert root_logging.level == logging.WARNING
    assert len(root_logging.handlers) == 2 and root_logging.handlers[1] is extra


def test_hook_taskq_after_setup_task_logger(
    make_plugin: MakePlugin, memory_url: str, root_logging: logging.Logger
) -> None:
    from taskq.cli.worker import configure_logging

    calls: list[tuple[str, str, str]] = []
    plugin = make_plugin(
        "tasklines",
        taskq_after_setup_logger=lambda logger: calls.append(("root", logger.name, "")),
        taskq_after_setup_task_logger=lambda logger, loglevel, format: calls.append(  # noqa: A006 - the hook's name
            (logger.name, loglevel, format)
        ),
    )
    app = hooked_app(memory_url, plugin, worker_log_format="%(levelname)s %(message)s")
    configure_logging(app, "INFO")
    assert calls == [("root", "root", ""), ("taskq.worker.endings", "INFO", "%(levelname)s %(message)s")]


class EventletLikePool(SoloPool):
    """A solo pool that calls the ``taskq_eventlet_pool_*`` hooks through the plugin manager the
    worker gives it, as taskq-eventlet's pool does (whose own tests run the real one)."""

    def start(self) -> None:
        super().start()
        if self.plugins is not None:
            self.plugins.eventlet_pool_started(self)

    def stop(self, *, wait: bool = True) -> None:
        if self.plugins is not None:
            self.plugins.eventlet_pool_stopping(self)
        super().stop(wait=wait)
        if self.plugins is not None:
            self.plugins.eventlet_pool_stopped(self)

    def apply(self, target: Callable[..., object], args: tuple[object, ...], **options: Any) -> None:
        if self.plugins is not None and self.plugins.has_impl("taskq_eventlet_pool_apply"):
            self.plugins.eventlet_pool_apply(self, target, args)
        super().apply(target, args, **options)


@pytest.fixture
def eventlet_like(make_plugin: MakePlugin, memory_url: str) -> tuple[App, list[tuple[object, ...]]]:
    """An app whose worker runs :class:`EventletLikePool`, and what its eventlet hooks heard."""
    events: list[tuple[object, ...]] = []
    plugin = make_plugin(
        "eventletlike",
        taskq_register_pools=lambda: {"eventletlike": f"{__name__}:EventletLikePool"},
        taskq_eventlet_pool_started=lambda pool: events.append(("started", pool)),
        taskq_eventlet_pool_stopping=lambda pool: events.append(("stopping", pool)),
        taskq_eventlet_pool_stopped=lambda pool: events.append(("stopped", pool)),
        taskq_eventlet_pool_apply=lambda pool, target, args: events.append(("apply", pool, target, args)),
    )
    return hooked_app(memory_url, plugin), events


def test_hook_taskq_eventlet_pool_started(eventlet_like: Any, start_worker: StartWorker) -> None:
    app, events = eventlet_like
    runner = start_worker(app, pool="eventletlike")
    assert events == [("started", runner.worker.pool)]


def test_hook_taskq_eventlet_pool_stopping(eventlet_like: Any, start_worker: StartWorker) -> None:
    app, events = eventlet_like
    runner = start_worker(app, pool="eventletlike")
    runner.stop()
    assert [event[0] for event in events] == ["started", "stopping", "stopped"]
    assert events[1] == ("stopping", runner.worker.pool)


def test_hook_taskq_eventlet_pool_stopped(eventlet_like: Any, start_worker: StartWorker) -> None:
    app, events = eventlet_like
    runner = start_worker(app, pool="eventletlike")
    runner.stop()
    assert events[-1] == ("stopped", runner.worker.pool)


def test_hook_taskq_eventlet_pool_apply(eventlet_like: Any, start_worker: StartWorker) -> None:
    from taskq.worker.trace import trace_task

    app, events = eventlet_like

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    runner = start_worker(app, pool="eventletlike")
    result = add.delay(1, 2)
    assert result.get(timeout=TIMEOUT) == 3
    [(_, pool, target, (given_app, request))] = [event for event in events if event[0] == "apply"]
    assert (pool, target, given_app, request.id) == (runner.worker.pool, trace_task, app, result.id)


def test_hook_taskq_heartbeat_sent(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    beats: list[str] = []
    app = hooked_app(
        memory_url, make_plugin("beats", taskq_heartbeat_sent=lambda worker: beats.append(worker.hostname))
    )
    start_worker(app, hostname="beating@test")
    wait_until(lambda: beats, "a heartbeat")
    assert beats[0] == "beating@test"
    assert "beating@test" in app.new_backend().workers()


def test_hook_taskq_beat_init(make_plugin: MakePlugin, memory_url: str, tmp_path: Path) -> None:
    from taskq.beat.service import Beat
    from taskq.errors import ConfigError

    seen: list[object] = []
    app = hooked_app(memory_url, make_plugin("beatinit", taskq_beat_init=lambda beat: seen.append(beat)))
    beat = Beat(app, scheduler="memory")

    def broken_setup() -> None:
        raise ConfigError("stop here: only the start is tested")

    beat.setup = broken_setup  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match="stop here"):
        beat.run()
    assert seen == [beat]


def test_hook_taskq_beat_embedded_init(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    seen: list[tuple[str, object]] = []
    plugin = make_plugin(
        "embedded",
        taskq_beat_init=lambda beat: seen.append(("init", beat)),
        taskq_beat_embedded_init=lambda beat: seen.append(("embedded", beat)),
    )
    app = hooked_app(memory_url, plugin)
    from taskq.beat.service import Beat

    alone = Beat(app, scheduler="memory")
    alone.setup = lambda: alone.stop()  # type: ignore[method-assign]  # only the start is tested
    alone.run()
    assert seen == [("init", alone)]  # taskq beat: not embedded
    seen.clear()
    worker = start_worker(app, beat=True, scheduler="memory").worker
    wait_until(lambda: len(seen) == 2, "the embedded beat's start")
    embedded = seen[0][1]
    assert seen == [("init", embedded), ("embedded", embedded)]
    assert isinstance(embedded, Beat) and embedded.app is worker.app


# ---- Publishing -------------------------------------------------------------------------------


def test_hook_taskq_before_publish(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    seen: list[tuple[str, str, str]] = []

    def before_publish(name: str, task_id: str, headers: dict[str, object], queue: str) -> None:
        seen.append((name, task_id, queue))
        headers["x-tenant"] = "acme"

    app = hooked_app(memory_url, make_plugin("tenant", taskq_before_publish=before_publish))

    @app.task(bind=True)
    def tenant(self: Task[[], object]) -> object:
        return self.request.headers.get("x-tenant")

    start_worker(app)
    result = tenant.delay()
    assert result.get(timeout=TIMEOUT) == "acme"
    assert seen == [(tenant.name, result.id, "taskq")]


def test_hook_taskq_after_publish(make_plugin: MakePlugin, memory_url: str) -> None:
    seen: list[tuple[str, str, str, int]] = []

    def after_publish(app: App, name: str, task_id: str, queue: str) -> None:
        seen.append((name, task_id, queue, MemoryTransport(memory_url).depth(queue)))

    app = hooked_app(memory_url, make_plugin("after", taskq_after_publish=after_publish))
    result = app.send_task("proj.add", (1, 2), queue="math")
    assert seen == [("proj.add", result.id, "math", 1)]


# ---- Task execution ---------------------------------------------------------------------------


@pytest.fixture
def task_events(make_plugin: MakePlugin) -> tuple[types.ModuleType, list[tuple[object, ...]]]:
    events: list[tuple[object, ...]] = []
    plugin = make_plugin(
        "tracer",
        taskq_task_prerun=lambda task, request: events.append(("prerun", task.name, request.id)),
        taskq_task_postrun=lambda task, request, state, retval: events.append(("postrun", request.id, state, retval)),
        taskq_task_success=lambda task, request, retval: events.append(("success", request.id, retval)),
        taskq_task_failure=lambda task, request, exc, traceback: events.append(
            ("failure", request.id, repr(exc), "ValueError: bad" in traceback)
        ),
        taskq_task_retry=lambda task, request, reason: events.append(("retry", request.id, repr(reason))),
        taskq_task_rejected=lambda request, reason: events.append(("rejected", request, reason)),
    )
    return plugin, events


def test_hook_taskq_task_prerun(task_events: Any, memory_url: str, start_worker: StartWorker) -> None:
    plugin, events = task_events
    app = hooked_app(memory_url, plugin)
    ran: list[object] = []

    @app.task
    def add(x: int, y: int) -> int:
        ran.append(events[-1][0])
        return x + y

    start_worker(app)
    result = add.delay(1, 2)
    result.get(timeout=TIMEOUT)
    assert events[0] == ("prerun", add.name, result.id)
    assert ran == ["prerun"]  # before the task's function


def test_hook_taskq_task_postrun(task_events: Any, memory_url: str, start_worker: StartWorker) -> None:
    plugin, events = task_events
    app = hooked_app(memory_url, plugin)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    start_worker(app)
    result = add.delay(1, 2)
    result.get(timeout=TIMEOUT)
    assert events[-1] == ("postrun", result.id, states.SUCCESS, 3)


def test_hook_taskq_task_success(task_events: Any, memory_url: str, start_worker: StartWorker) -> None:
    plugin, events = task_events
    app = hooked_app(memory_url, plugin)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    start_worker(app)
    result = add.delay(1, 2)
    result.get(timeout=TIMEOUT)
    assert [e[0] for e in events] == ["prerun", "success", "postrun"]
    assert events[1] == ("success", result.id, 3)


def test_hook_taskq_task_failure(task_events: Any, memory_url: str, start_worker: StartWorker) -> None:
    plugin, events = task_events
    app = hooked_app(memory_url, plugin)

    @app.task
    def fails() -> None:
        raise ValueError("bad")

    start_worker(app)
    result = fails.delay()
    with pytest.raises(ValueError, match="bad"):
        result.get(timeout=TIMEOUT)
    assert [e[0] for e in events] == ["prerun", "failure", "postrun"]
    assert events[1] == ("failure", result.id, "ValueError('bad')", True)
    assert events[2][:3] == ("postrun", result.id, states.FAILURE)


def refuse_to_send(task_name: str) -> Callable[[Message], None]:
    """A ``taskq_message_encoded`` that stops every send of ``task_name``, as a broker refusing it would."""

    def refuse(message: Message) -> None:
        if message.headers.get("task") == task_name:
            raise RuntimeError(f"the broker refuses {task_name}")

    return refuse


def test_hook_taskq_task_internal_error(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    events: list[tuple[object, ...]] = []
    plugin = make_plugin(
        "internal",
        taskq_message_encoded=refuse_to_send("hooks.refused"),
        taskq_task_internal_error=lambda task, request, exc, traceback: events.append(
            ("internal error", task.name, request.id, repr(exc), "RuntimeError: the broker" in traceback)
        ),
        taskq_task_failure=lambda request, exc: events.append(("failure", request.id, repr(exc))),
    )
    app = hooked_app(memory_url, plugin)

    @app.task(name="hooks.first")
    def first() -> int:
        return 1

    @app.task(name="hooks.refused")
    def refused(x: int) -> int:
        return x

    start_worker(app)
    last = (first.s() | refused.s()).delay()  # the worker sends the second step: refused
    first_id = cast("AsyncResult[object]", last.parent).id
    wait_until(lambda: len(events) == 2, "the internal error and the failure")
    error = "RuntimeError('the broker refuses hooks.refused')"
    assert events == [("internal error", "hooks.first", first_id, error, True), ("failure", first_id, error)]
    assert app.AsyncResult(first_id).state == states.FAILURE
    assert first.delay().get(timeout=TIMEOUT) == 1  # the worker goes on


def test_hook_taskq_task_retry(task_events: Any, memory_url: str, start_worker: StartWorker) -> None:
    plugin, events = task_events
    app = hooked_app(memory_url, plugin)

    @app.task(bind=True, max_retries=3)
    def flaky(self: Task[[], str]) -> str:
        if self.request.retries == 0:
            raise self.retry(exc=FlakyError("once"), countdown=0)
        return "ok"

    start_worker(app)
    result = flaky.delay()
    assert result.get(timeout=TIMEOUT) == "ok"
    kinds = [e[0] for e in events]
    assert kinds == ["prerun", "retry", "postrun", "prerun", "success", "postrun"]
    assert events[1] == ("retry", result.id, "FlakyError('once')")
    assert events[2][:3] == ("postrun", result.id, states.RETRY)


def test_hook_taskq_task_rejected(
    task_events: Any, memory_url: str, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    plugin, events = task_events
    app = hooked_app(memory_url, plugin)
    app.send_task("proj.unknown_task")
    start_worker(app)
    wait_until(lambda: events, "the rejection")
    [(kind, request, reason)] = events
    assert kind == "rejected"
    assert request is None
    assert "unknown task 'proj.unknown_task'" in str(reason)


def test_hook_taskq_task_received(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    events: list[tuple[object, ...]] = []
    plugin = make_plugin("receiver", taskq_task_received=lambda request: events.append((request.id, request.eta)))
    app = hooked_app(memory_url, plugin)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    start_worker(app)
    now = add.delay(1, 2)
    assert now.get(timeout=TIMEOUT) == 3
    wait_until(lambda: events, "the message to be received")
    assert events == [(now.id, None)]


def test_hook_taskq_task_unknown(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    events: list[tuple[object, ...]] = []
    plugin = make_plugin(
        "unknowns",
        taskq_task_unknown=lambda app, name, task_id, message: events.append((name, task_id, type(message).__name__)),
    )
    app = hooked_app(memory_url, plugin)
    sent = app.send_task("proj.nobody")
    start_worker(app)
    wait_until(lambda: events, "the unknown task")
    assert events == [("proj.nobody", sent.id, "Message")]


def test_event_hook_that_raises_in_the_worker_loses_no_task(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker
) -> None:
    def broken(task: object, request: object) -> None:
        raise RuntimeError("plugin bug")

    app = hooked_app(memory_url, make_plugin("broken", taskq_task_prerun=broken))

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    start_worker(app)
    assert add.delay(1, 2).get(timeout=TIMEOUT) == 3


def test_hook_taskq_task_revoked(make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker) -> None:
    events: list[tuple[str, bool, bool]] = []
    plugin = make_plugin(
        "revoked",
        taskq_task_revoked=lambda request, terminated, expired: events.append((request.id, terminated, expired)),
    )
    app = hooked_app(memory_url, plugin)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    skipped = add.delay(1, 1)
    skipped.revoke()
    stale = add.apply_async((2, 2), expires=-1)
    start_worker(app)
    with pytest.raises(Exception, match="expired"):
        stale.get(timeout=TIMEOUT)
    with pytest.raises(Exception, match="revoked"):
        skipped.get(timeout=TIMEOUT)
    assert sorted(events) == sorted([(skipped.id, False, False), (stale.id, False, True)])

"""The application: settings, plugins, the task registry, and sending tasks.

``App`` is what a project creates once (``app = App("proj")``) and what ``-A`` points
at. It loads its settings when created and its plugins, broker connection and result
backend the first time they are needed, one connection per thread and process.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar, cast, overload

from taskq import sending
from taskq._running import running_context
from taskq._serialization import SerializerRegistry
from taskq.config import Settings, load_settings
from taskq.drivers.support.connections import current_pid, mask_url
from taskq.errors import ConfigError, ResultNotEnabledError, RoutingError
from taskq.plugins import Plugins, load_plugins
from taskq.sending import SendOptions, takes_send_options_by_name
from taskq.task import Context, Task
from taskq.task import Task as _Task

if TYPE_CHECKING:
    from taskq.canvas import Signature
    from taskq.control import Control
    from taskq.drivers.backend import ResultBackend
    from taskq.drivers.scheduler import ScheduleEntry
    from taskq.drivers.transport import Transport
    from taskq.events import EventDispatcher
    from taskq.result import AsyncResult
    from taskq.routing import Routing
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_apps: weakref.WeakSet[App] = weakref.WeakSet()
_default_app: App | None = None
_shared_tasks: list[tuple[Callable[..., object], dict[str, object]]] = []


def current_app() -> App:
    """The app most recently created (or made current); a default one if none exists."""
    global _default_app
    if _default_app is None:
        _default_app = App("default")
    return _default_app


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError(
            f"{mask_url(url)!r} is not a URL; write it as scheme://..., for example sqlite:///taskq.db "
            f"or redis://127.0.0.1:6379/0"
        )
    return scheme


class _Connections(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.transport: Transport | None = None
        self.backend: ResultBackend | None = None


class App:
    """A taskq application. See the module docstring."""

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | None = None,
        backend: str | None = None,
        config_file: str | Path | None = None,
        read_config: bool = True,
        plugins: Plugins | None = None,
        extra_plugins: Iterable[object] = (),
        set_as_current: bool = True,
        **settings: object,
    ) -> None:
        global _default_app
        if broker is not None:
            settings["broker_url"] = broker
        if backend is not None:
            settings["result_backend"] = backend
        self.main = main
        self.conf: Settings = load_settings(settings, config_file=config_file, read_files=read_config)
        self.tasks: dict[str, Task[..., object]] = {}
        self._plugins = plugins
        self._extra_plugins = list(extra_plugins)
        self._serializers: SerializerRegistry | None = None
        self._connections = _Connections()
        self._routing: Routing | None = None
        #: Entries added by :meth:`add_periodic_task`, by name; beat reads them with ``beat_schedule``.
        self.periodic_tasks: dict[str, ScheduleEntry] = {}
        self._backend_url: tuple[object, object, str | None] | None = None
        self._lock = threading.Lock()
        self._configured = False
        self._task_modules_imported = False
        self._events: EventDispatcher | None = None
        _apps.add(self)
        if set_as_current:
            _default_app = self
        from taskq import builtin_tasks

        builtin_tasks.register(self)
        for fn, options in _shared_tasks:
            self._register(fn, dict(options))

    def set_current(self) -> None:
        global _default_app
        _default_app = self

    def config_from_object(self, obj: object | str) -> None:
        """Take settings from a mapping, an object or a module path (lower-case names)."""
        if isinstance(obj, str):
            obj = importlib.import_module(obj)
        if isinstance(obj, Mapping):
            values = dict(obj)
        else:
            values = {k: getattr(obj, k) for k in dir(obj) if k.islower() and not k.startswith("_")}
            values = {k: v for k, v in values.items() if not callable(v) and not isinstance(v, type(os))}
        self.conf.update(**values)

    # ---- Plugins and drivers ----------------------------------------------------------

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            with self._lock:
                if self._plugins is None:
                    self._plugins = load_plugins(
                        self.conf.plugin_enable, self.conf.plugin_disable, extra=self._extra_plugins
                    )
        if not self._configured:
            self._configured = True
            for task in self.tasks.values():
                task.resolve_defaults()
            self._plugins.app_configured(self)
        return self._plugins

    @property
    def serializers(self) -> SerializerRegistry:
        if self._serializers is None:
            self._serializers = SerializerRegistry(
                self.plugins.serializers(), cast("list[str]", self.conf["accept_content"])
            )
        return self._serializers

    def _connections_here(self) -> _Connections:
        conns = self._connections
        if conns.pid != current_pid():
            # A forked child must not share its parent's sockets or database handles.
            conns.pid = current_pid()
            conns.transport = None
            conns.backend = None
        return conns

    @property
    def transport(self) -> Transport:
        """This thread's broker connection."""
        conns = self._connections_here()
        if conns.transport is None:
            conns.transport = self.new_transport()
        return conns.transport

    def new_transport(self) -> Transport:
        """A new broker connection (each thread that consumes needs its own)."""
        from taskq.drivers.transport import Transport

        url = str(self.conf["broker_url"])
        cls = self.plugins.resolve_driver("transports", _scheme(url))
        if not (isinstance(cls, type) and issubclass(cls, Transport)):
            raise ConfigError(f"the transport for {_scheme(url)!r} is not a taskq.drivers.transport.Transport")
        options = cast("Mapping[str, object]", self.conf["broker_transport_options"])
        # The bindings of task_queues, for transports that declare them where Celery looks (Redis, RabbitMQ).
        # and its broadcast queues, which a transport copies to every worker subscribed.
        routing = self.routing
        return cls(url, {**options, "declared_bindings": routing.bindings_of, "broadcast_queues": routing.broadcast_of})

    @property
    def backend_url(self) -> str | None:
        """The result backend's URL, or None when results are disabled.

        Read for every task the worker runs: derived once per pair of settings.
        """
        url = self.conf["result_backend"]
        broker = self.conf["broker_url"]
        cached = self._backend_url
        if cached is not None and cached[0] == url and cached[1] == broker:
            return cached[2]
        found: str | None
        if url in ("disabled", "", False):
            found = None
        elif url is None:
            found = str(broker) if _scheme(str(broker)) in self.plugins.drivers("result_backends") else None
        else:
            found = str(url)
        self._backend_url = (url, broker, found)
        return found

    @property
    def has_backend(self) -> bool:
        return self.backend_url is not None

    @property
    def backend(self) -> ResultBackend:
        """This thread's result backend."""
        conns = self._connections_here()
        if conns.backend is None:
            conns.backend = self.new_backend()
        return conns.backend

    def new_backend(self) -> ResultBackend:
        from taskq.drivers.backend import ResultBackend

        url = self.backend_url
        if url is None:
            raise ResultNotEnabledError(
                "no result backend is configured, so results cannot be stored or read. "
                'Set result_backend in taskq.toml (for example result_backend = "sqlite:///taskq.db")'
            )
        cls = self.plugins.resolve_driver("result_backends", _scheme(url))
        if not (isinstance(cls, type) and issubclass(cls, ResultBackend)):
            raise ConfigError(f"the result backend for {_scheme(url)!r} is not a ResultBackend")
        expires = cast("float | None", self.conf["result_expires"]) or None
        return cls(
            url,
            cast("Mapping[str, object]", self.conf["result_backend_transport_options"]),
            serializer=self.serializers.get(str(self.conf["result_serializer"])),
            expires=expires,
            compression=cast("str | None", self.conf["result_compression"]) or None,
            max_size=cast("int | None", self.conf["result_max_size"]) or None,
            broker_url=cast("str | None", self.conf["broker_url"]) or None,
        )

    @property
    def events(self) -> EventDispatcher:
        """This client's :class:`~taskq.events.EventDispatcher` (``task-sent`` events, with
        ``task_send_sent_event``), made when first used; it sends from a thread of its own."""
        with self._lock:
            if self._events is None:
                import socket

                from taskq.events import EventDispatcher

                self._events = EventDispatcher(self, f"gen{os.getpid()}@{socket.gethostname()}", groups={"task"})
            return self._events

    def close(self) -> None:
        """Close this thread's connections (and send the events still buffered)."""
        events, self._events = self._events, None
        if events is not None:
            events.close()
        conns = self._connections_here()
        if conns.transport is not None:
            conns.transport.close()
            conns.transport = None
        if conns.backend is not None:
            conns.backend.close()
            conns.backend = None

    # ---- Tasks --------------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self, fn: None = None, /, *, name: str | None = None, **options: object
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self, fn: Callable[P, R] | None = None, /, *, name: str | None = None, **options: object
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task: ``@app.task`` or ``@app.task(bind=True, ...)``."""
        if fn is not None:
            return self._register(fn, {"name": name, **options} if name else options)

        def decorate(func: Callable[P, R]) -> Task[P, R]:
            return self._register(func, {"name": name, **options} if name else options)

        return decorate

    def _register(self, fn: Callable[P, R], options: dict[str, object]) -> Task[P, R]:
        name = cast("str | None", options.pop("name", None)) or self.gen_task_name(fn)
        base = options.pop("base", None) or Task
        if not (isinstance(base, type) and issubclass(base, Task)):
            raise ConfigError(
                f"task {name}: base={base!r} is not a subclass of taskq.Task; write class MyTask(taskq.Task) "
                "(or app.Task) and give base=MyTask"
            )
        task: Task[P, R] = base(self, fn, name, options)
        if self._configured:
            task.resolve_defaults()
        self.tasks[name] = cast("Task[..., object]", task)
        return task

    def register_task(self, task: Task[..., R] | type[Task[..., R]]) -> Task[..., R]:
        """Register a class-based task (``class Add(app.Task): def run(self, x, y): ...``), an
        instance or the class; its ``name`` is the class's, else ``module.ClassName``."""
        instance = task() if isinstance(task, type) else task
        if not isinstance(instance, Task):
            raise ConfigError(f"register_task() takes a taskq.Task subclass or instance, not {task!r}")
        instance.app = self
        if not instance.name:
            cls = type(instance)
            instance.name = f"{cls.__module__}.{cls.__qualname__}"
        if self._configured:
            instance.resolve_defaults()
        self.tasks[instance.name] = cast("Task[..., object]", instance)
        return instance

    def gen_task_name(self, fn: Callable[..., object]) -> str:
        module = getattr(fn, "__module__", None) or "__main__"
        if module == "__main__" and self.main:
            module = self.main
        return f"{module}.{getattr(fn, '__name__', repr(fn))}"

    def autodiscover_tasks(self, packages: Iterable[str], related_name: str = "tasks") -> list[str]:
        """Import ``<package>.<related_name>`` for each package; return what was imported."""
        imported = []
        for package in packages:
            module_name = f"{package}.{related_name}" if related_name else package
            try:
                importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                continue
            imported.append(module_name)
        return imported

    def import_task_modules(self) -> None:
        """Import the modules listed in ``imports`` and ``include``, once (the worker and beat
        do this as they start), after ``taskq_before_import_modules``."""
        if self._task_modules_imported:
            return
        plugins = self.plugins
        if plugins.has_impl("taskq_before_import_modules"):
            plugins.before_import_modules(self)
        for name in [*cast("list[str]", self.conf["imports"]), *cast("list[str]", self.conf["include"])]:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise ConfigError(f"cannot import task module {name!r} listed in imports/include: {exc}") from exc
        self._task_modules_imported = True

    # ---- Sending ------------------------------------------------------------------------

    @property
    def routing(self) -> Routing:
        """The routing table read from the settings (``task_queues``, ``task_routes``, ...), once."""
        routing = self._routing
        if routing is None:
            from taskq.routing import Routing  # only once: kept off start-ups that send nothing

            routing = self._routing = Routing(self.conf)
        return routing

    def route(self, name: str) -> str:
        """The queue a task goes to when the caller names none (``task_routes``; the first, when
        its route reaches several queues)."""
        queues = self.routing.route(name).queues
        if not queues:
            raise RoutingError(f"the task {name} is routed to no queue (task_drop_unroutable drops what is sent to it)")
        return queues[0]

    @takes_send_options_by_name
    def send_task(
        self,
        name: str,
        args: Sequence[object] | None,
        kwargs: Mapping[str, object] | None,
        options: SendOptions,
    ) -> AsyncResult[object]:
        """Send a task by name (it need not be registered here); see ``Task.apply_async``.

        The options are :class:`taskq.sending.SendOptions`' fields, with Celery's names:
        ``countdown`` (seconds) or ``eta`` (datetime or POSIX time) delay the task,
        ``expires`` (seconds from now, or a datetime) makes workers skip it once past,
        ``queue``, ``priority``, ``task_id``, ``headers``, ``link``, ``link_error``, ...
        """
        return sending.send(self, name, args, kwargs, options)

    def add_periodic_task(
        self,
        schedule: object,
        sig: Signature | Task[..., object] | str,
        args: Sequence[object] = (),
        kwargs: Mapping[str, object] | None = None,
        *,
        name: str | None = None,
        **options: object,
    ) -> str:
        """Have beat send ``sig`` on ``schedule``, as a ``beat_schedule`` entry would; returns its name.

        ``sig`` is a signature (``add.s(2, 2)``, or a chain or group), a task or a task's
        name; ``args``/``kwargs`` go with a task or a name. ``schedule`` is what an entry's
        ``schedule`` may be: seconds, a ``timedelta``, a crontab string, or
        ``every()``/``crontab()``/``solar()``. ``options`` are ``send_task``'s (queue,
        expires, ...). The name defaults to the call's text, e.g. ``"proj.add(2, 2)"``; an
        entry added again under the same name replaces the first.
        """
        from taskq.canvas import Signature
        from taskq.drivers.scheduler import parse_entry

        workflow: Signature | None = None
        if isinstance(sig, Signature):
            task = str(sig["task"])
            args = cast("Sequence[object]", sig.get("args") or ())
            kwargs = cast("Mapping[str, object]", sig.get("kwargs") or {})
            options = {**cast("Mapping[str, object]", sig.get("options") or {}), **options}
            if sig.get("subtask_type"):
                workflow = sig
        else:
            task = sig if isinstance(sig, str) else sig.name
        kwargs = dict(kwargs or {})
        if name is None:
            shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
            name = f"{task}({', '.join(shown)})"
        raw = {"task": task, "schedule": schedule, "args": list(args), "kwargs": kwargs, "options": options}
        entry = parse_entry(name, raw)
        entry.signature = workflow
        self.periodic_tasks[name] = entry
        return name

    @property
    def control(self) -> Control:
        """Revoke tasks (and, later, inspect and control workers)."""
        from taskq.control import Control

        return Control(self)

    def AsyncResult(self, task_id: str, task_name: str | None = None) -> AsyncResult[object]:  # noqa: N802
        from taskq.result import AsyncResult  # imported on first use: a worker may never need it

        return AsyncResult(task_id, app=self, task_name=task_name)

    def current_worker_task_context(self) -> Context | None:
        """The request of the task running in this thread, if a worker is running one."""
        return running_context()

    # ---- Worker -------------------------------------------------------------------------

    def Worker(self, **options: object) -> Worker:  # noqa: N802 - Celery's name
        from taskq.worker.worker import Worker

        return Worker(self, **options)  # type: ignore[arg-type]  # options are checked by Worker

    def __repr__(self) -> str:
        return f"<App {self.main or '__main__'} broker={mask_url(str(self.conf['broker_url']))}>"

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # An app travels to pool processes by reference: the child has its own copy
        # (forked, or imported by -A) and the worker made it the current app.
        return (current_app, ())

    @property
    def Task(self) -> type[_Task[..., object]]:  # noqa: N802 - Celery's name: class MyTask(app.Task)
        """The class tasks are made of, to subclass for ``@app.task(base=MyTask)``."""
        return _Task


def shared_task(fn: Callable[P, R] | None = None, /, **options: object) -> object:
    """Declare a task for every app, present and future (for reusable libraries)."""

    def decorate(func: Callable[P, R]) -> Task[P, R]:
        _shared_tasks.append((func, dict(options)))
        task: Task[P, R] | None = None
        for app in list(_apps):
            task = app._register(func, dict(options))
        if task is None:
            task = current_app()._register(func, dict(options))
        return _SharedTask(task.name, func)  # type: ignore[return-value]  # a proxy that acts as the Task

    if fn is not None:
        return decorate(fn)
    return decorate


class _SharedTask:
    """Stands for a shared task: resolves to the current app's task of that name."""

    def __init__(self, name: str, fn: Callable[..., object]) -> None:
        self.name = name
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", name)
        self.__doc__ = fn.__doc__

    def _task(self) -> Task[..., object]:
        app = current_app()
        task = app.tasks.get(self.name)
        if task is None:
            fn = self.__wrapped__
            options = next((o for f, o in _shared_tasks if f is fn), {})
            task = app._register(fn, dict(options))
        return task

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self._task()(*args, **kwargs)

    def __getattr__(self, attr: str) -> object:
        return getattr(self._task(), attr)

    def __repr__(self) -> str:
        return f"<@shared_task: {self.name}>"


__all__ = ["App", "current_app", "shared_task"]

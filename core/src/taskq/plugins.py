"""Plugin discovery, selection and driver lookup.

Plugins are found by stevedore in the entry-point group ``taskq.plugins`` (listed from its
entry-point cache by :mod:`taskq._entry_points`) and registered with a pluggy manager; the
config file's ``[plugins]`` table chooses which load (``enable`` lists the only third-party
plugins to load, ``disable`` removes any, core's built-ins included), and stevedore imports
only those. Core's own drivers arrive through the same entry points.

:class:`Plugins` is built by :func:`load_plugins` from the configuration and handed
down (app, worker, CLI); nothing is discovered at import time. Each hook is called
through one typed method here, so searching for the method finds every call site.
"""

from __future__ import annotations

import importlib
import logging
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import pluggy

from taskq import _entry_points, hookspecs
from taskq.errors import ConfigError, DriverNotFoundError, PluginError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from taskq.app import App
    from taskq.beat.service import Beat
    from taskq.drivers.pool import Pool
    from taskq.drivers.serializer import Serializer
    from taskq.drivers.transport import Message
    from taskq.task import Task
    from taskq.worker.commands import Command
    from taskq.worker.request import Request
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "taskq.plugins"
CORE_DISTRIBUTION = "taskq-core"
#: The import package of taskq-core: an entry point into it is one of core's built-ins.
CORE_PACKAGE = "taskq"

#: Driver kinds, the hook that offers each, and how users name one.
DRIVER_KINDS: dict[str, tuple[str, str]] = {
    "transports": ("taskq_register_transports", "broker URL scheme"),
    "result_backends": ("taskq_register_result_backends", "result backend URL scheme"),
    "pools": ("taskq_register_pools", "pool"),
    "schedulers": ("taskq_register_schedulers", "scheduler"),
    "serializers": ("taskq_register_serializers", "serializer"),
    "commands": ("taskq_register_commands", "command"),
}


@dataclass
class PluginInfo:
    """One plugin as ``taskq plugins`` shows it.

    ``module`` is what the entry point names. A plugin found through an entry point has
    its distribution and version read from the installed metadata when first asked for
    (``taskq plugins``, an error message), never while a worker starts.
    """

    name: str
    module: str
    enabled: bool = True
    error: str | None = None
    drivers: dict[str, list[str]] = field(default_factory=dict)
    #: ``(distribution, version)`` when known without metadata (a plugin registered in code).
    origin: tuple[str, str] | None = None

    @property
    def distribution(self) -> str:
        return self._origin()[0]

    @property
    def version(self) -> str:
        return self._origin()[1]

    @property
    def is_builtin(self) -> bool:
        if self.origin is not None:
            return self.origin[0] == CORE_DISTRIBUTION
        return is_core_module(self.module)

    def _origin(self) -> tuple[str, str]:
        if self.origin is None:
            return _entry_points.distribution_of(ENTRY_POINT_GROUP, self.name, self.module)
        return self.origin


def is_core_module(target: str) -> bool:
    """Whether the import string ``target`` names a module of taskq-core (a built-in plugin)."""
    return target.partition(":")[0].strip().partition(".")[0] == CORE_PACKAGE


@dataclass(frozen=True)
class DriverEntry:
    """A driver offered by a plugin: its import string (or object) and who offers it."""

    target: object
    plugin: str


def import_string(target: str) -> object:
    """Import ``"package.module:attr"`` (or ``"package.module.attr"``)."""
    module_name, _, attr = target.partition(":")
    if not attr:
        module_name, _, attr = target.rpartition(".")
    module = importlib.import_module(module_name)
    obj: object = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


#: Every plugin manager alive, so that a signal connected later reaches each (taskq.signals).
_LIVE: weakref.WeakSet[Plugins] = weakref.WeakSet()


def live_plugin_managers() -> list[Plugins]:
    return list(_LIVE)


class Plugins:
    """The loaded plugins, the drivers they offer, and typed calls into their hooks."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._drivers: dict[str, dict[str, DriverEntry]] = {}
        self._has_impl_cache: dict[str, bool] = {}
        _LIVE.add(self)
        signals = sys.modules.get("taskq.signals")  # only once the application imported it
        if signals is not None:
            for name, bridge in signals.active_bridges().items():
                self.register(bridge, name, distribution="taskq (signals)", version="")

    # ---- Registration -----------------------------------------------------------

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str = "?",
        version: str = "?",
    ) -> None:
        """Register a plugin module or object (tests and embedding use this directly)."""
        plugin_name = name or getattr(plugin, "__name__", None) or repr(plugin)
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self._add(plugin, PluginInfo(plugin_name, module, origin=(distribution, version)))

    def _add(self, plugin: object, info: PluginInfo) -> None:
        try:
            self.manager.register(plugin, name=info.name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            self.manager.unregister(name=info.name)
            raise PluginError(
                f"plugin {info.name!r} ({info.distribution}) does not fit the taskq plugin "
                f"contract: {exc}. Check its hook names against taskq.hookspecs."
            ) from exc
        self.infos[info.name] = info
        self._drivers.clear()
        self._has_impl_cache.clear()

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as ``name`` (a signal's, once it has no receiver)."""
        if self.manager.get_plugin(name) is not None:
            self.manager.unregister(name=name)
        self.infos.pop(name, None)
        self._has_impl_cache.clear()

    def record_failure(self, name: str, module: str, error: str, origin: tuple[str, str] | None = None) -> None:
        """List the plugin ``name`` as not loaded, with the reason ``taskq plugins`` shows."""
        self.infos[name] = PluginInfo(name, module, enabled=False, error=error, origin=origin)

    # ---- Drivers ----------------------------------------------------------------

    def drivers(self, kind: str) -> dict[str, DriverEntry]:
        """Every driver of ``kind`` offered by a loaded plugin, by name."""
        if kind in self._drivers:
            return self._drivers[kind]
        hook_name, label = DRIVER_KINDS[kind]
        found: dict[str, DriverEntry] = {}
        for impl in self.manager.hook.__dict__[hook_name].get_hookimpls():
            plugin_name = self.manager.get_name(impl.plugin) or "?"
            try:
                offered = cast(Mapping[str, object], impl.function()) or {}
            except Exception as exc:
                logger.exception("plugin %s failed in %s", plugin_name, hook_name)
                raise PluginError(f"plugin {plugin_name!r} failed in {hook_name}: {exc}") from exc
            for name, target in offered.items():
                if name in found and found[name].plugin != plugin_name:
                    other = found[name].plugin
                    raise PluginError(
                        f"two plugins offer the {label} {name!r}: {self._describe(other)} and "
                        f"{self._describe(plugin_name)}; disable one in taskq.toml:\n"
                        f'  [plugins]\n  disable = ["{plugin_name}"]'
                    )
                found[name] = DriverEntry(target, plugin_name)
        self._drivers[kind] = found
        return found

    def _describe(self, plugin_name: str) -> str:
        info = self.infos.get(plugin_name)
        if info is None:
            return plugin_name
        return f"{info.distribution} {info.version} (plugin {plugin_name!r})"

    def resolve_driver(self, kind: str, name: str) -> object:
        """Import and return the driver ``name`` of ``kind``, or say how to install it."""
        drivers = self.drivers(kind)
        entry = drivers.get(name)
        _, label = DRIVER_KINDS[kind]
        if entry is None:
            from taskq._install_advice import install_advice  # only when a driver is missing

            installed = ", ".join(sorted(drivers)) or "none"
            raise DriverNotFoundError(
                f"no {label} named {name!r}; installed: {installed}.\n{install_advice(kind, name)}"
            )
        target = entry.target
        if not isinstance(target, str):
            return target
        try:
            return import_string(target)
        except Exception as exc:
            raise PluginError(
                f"plugin {self._describe(entry.plugin)} offers the {label} {name!r} as "
                f"{target!r}, which fails to import: {type(exc).__name__}: {exc}. "
                f"Reinstall the plugin, or install what it needs."
            ) from exc

    def serializers(self) -> list[Serializer]:
        from taskq.drivers.serializer import Serializer

        out: list[Serializer] = []
        for name in self.drivers("serializers"):
            obj = self.resolve_driver("serializers", name)
            if not isinstance(obj, Serializer):
                raise PluginError(f"serializer {name!r} is not a taskq.drivers.serializer.Serializer")
            out.append(obj)
        return out

    def control_commands(self) -> dict[str, Command]:
        """The remote control commands plugins add, by name (see ``taskq_register_control_commands``)."""
        from taskq.worker.commands import Command

        found: dict[str, Command] = {}
        for answer in self.manager.hook.taskq_register_control_commands():
            for cmd in answer or ():
                if not isinstance(cmd, Command):
                    raise PluginError(
                        f"taskq_register_control_commands returned {cmd!r:.80}, not a Command: "
                        f"make each with the taskq.worker.commands.command decorator"
                    )
                found[cmd.name] = cmd
        return found

    def bootsteps(self) -> list[str]:
        """Import strings of worker steps contributed by plugins."""
        steps: list[str] = []
        for answer in self.manager.hook.taskq_register_bootsteps():
            steps.extend(answer.get("worker", ()))
        return steps

    # ---- Calling hooks ------------------------------------------------------------

    def has_impl(self, hook_name: str) -> bool:
        """Whether any loaded plugin implements ``hook_name`` (cached; per-message hooks)."""
        cached = self._has_impl_cache.get(hook_name)
        if cached is None:
            cached = bool(getattr(self.manager.hook, hook_name).get_hookimpls())
            self._has_impl_cache[hook_name] = cached
        return cached

    def _notify(self, hook_name: str, **kwargs: object) -> None:
        """Call every implementation; log (with the plugin's name) and carry on if one raises."""
        impls = getattr(self.manager.hook, hook_name).get_hookimpls()
        for impl in reversed(impls):
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception:
                logger.exception("plugin %s raised in %s; carrying on", self.manager.get_name(impl.plugin), hook_name)

    def early_init(self, pool: str | None, argv: Sequence[str]) -> None:
        self._notify("taskq_early_init", pool=pool, argv=list(argv))

    def app_configured(self, app: App) -> None:
        self._notify("taskq_app_configured", app=app)

    def cli_app_loaded(self, app: App, options: Mapping[str, object]) -> None:
        self._notify("taskq_cli_app_loaded", app=app, options=options)

    def before_import_modules(self, app: App) -> None:
        self._notify("taskq_before_import_modules", app=app)

    def setup_logging(self, app: App, loglevel: str, format: str) -> None:  # noqa: A002 - Celery's name
        self._notify("taskq_setup_logging", app=app, loglevel=loglevel, format=format)

    def after_setup_logger(self, app: App, logger: logging.Logger, loglevel: str, format: str) -> None:  # noqa: A002
        self._notify("taskq_after_setup_logger", app=app, logger=logger, loglevel=loglevel, format=format)

    def after_setup_task_logger(self, app: App, logger: logging.Logger, loglevel: str, format: str) -> None:  # noqa: A002
        self._notify("taskq_after_setup_task_logger", app=app, logger=logger, loglevel=loglevel, format=format)

    def before_worker_setup(self, worker: Worker, options: Mapping[str, object]) -> None:
        self._notify("taskq_before_worker_setup", worker=worker, options=options)

    def after_worker_setup(self, worker: Worker) -> None:
        self._notify("taskq_after_worker_setup", worker=worker)

    def worker_init(self, worker: Worker) -> None:
        self._notify("taskq_worker_init", worker=worker)

    def worker_ready(self, worker: Worker) -> None:
        self._notify("taskq_worker_ready", worker=worker)

    def worker_shutdown(self, worker: Worker) -> None:
        self._notify("taskq_worker_shutdown", worker=worker)

    def worker_shutting_down(self, worker: Worker, cold: bool) -> None:
        self._notify("taskq_worker_shutting_down", worker=worker, cold=cold)

    def before_create_process(self, worker: Worker) -> None:
        self._notify("taskq_before_create_process", worker=worker)

    def worker_process_init(self, worker: Worker) -> None:
        self._notify("taskq_worker_process_init", worker=worker)

    def worker_process_shutdown(self, worker: Worker, pid: int) -> None:
        self._notify("taskq_worker_process_shutdown", worker=worker, pid=pid)

    def eventlet_pool_started(self, pool: Pool) -> None:
        self._notify("taskq_eventlet_pool_started", pool=pool)

    def eventlet_pool_stopping(self, pool: Pool) -> None:
        self._notify("taskq_eventlet_pool_stopping", pool=pool)

    def eventlet_pool_stopped(self, pool: Pool) -> None:
        self._notify("taskq_eventlet_pool_stopped", pool=pool)

    def eventlet_pool_apply(self, pool: Pool, target: Callable[..., object], args: tuple[object, ...]) -> None:
        self._notify("taskq_eventlet_pool_apply", pool=pool, target=target, args=args)

    def heartbeat_sent(self, worker: Worker) -> None:
        self._notify("taskq_heartbeat_sent", worker=worker)

    def beat_init(self, beat: Beat) -> None:
        self._notify("taskq_beat_init", beat=beat)

    def beat_embedded_init(self, beat: Beat) -> None:
        self._notify("taskq_beat_embedded_init", beat=beat)

    def before_publish(self, app: App, name: str, task_id: str, headers: dict[str, object], queue: str) -> None:
        self._notify("taskq_before_publish", app=app, name=name, task_id=task_id, headers=headers, queue=queue)

    def message_encoded(self, app: App, message: Message) -> None:
        """Let plugins add to an encoded message; an exception reaches the sender."""
        self.manager.hook.taskq_message_encoded(app=app, message=message)

    def message_received(self, app: App, message: Message) -> str | None:
        """Why a claimed message must be dead-lettered before decoding, or None to go on.

        A plugin's configuration error (``ConfigError``) propagates: the worker cannot
        check anything. Any other exception (a ``MessageDecodeError`` too: the message may be
        anything) refuses the message, naming the plugin.
        """
        arguments = {"app": app, "message": message}
        for impl in reversed(self.manager.hook.taskq_message_received.get_hookimpls()):
            try:
                reason = impl.function(*[arguments[arg] for arg in impl.argnames])
            except ConfigError:
                raise
            except Exception as exc:
                plugin_name = self.manager.get_name(impl.plugin)
                logger.exception("plugin %s raised in taskq_message_received", plugin_name)
                return f"plugin {plugin_name} could not check the message: {type(exc).__name__}: {exc}"
            if reason is not None:
                return str(reason)
        return None

    def after_publish(self, app: App, name: str, task_id: str, queue: str) -> None:
        self._notify("taskq_after_publish", app=app, name=name, task_id=task_id, queue=queue)

    def task_prerun(self, task: Task[..., object], request: Request) -> None:
        self._notify("taskq_task_prerun", task=task, request=request)

    def task_postrun(self, task: Task[..., object], request: Request, state: str, retval: object) -> None:
        self._notify("taskq_task_postrun", task=task, request=request, state=state, retval=retval)

    def task_success(self, task: Task[..., object], request: Request, retval: object) -> None:
        self._notify("taskq_task_success", task=task, request=request, retval=retval)

    def task_failure(self, task: Task[..., object], request: Request, exc: BaseException, traceback: str) -> None:
        self._notify("taskq_task_failure", task=task, request=request, exc=exc, traceback=traceback)

    def task_internal_error(
        self, task: Task[..., object], request: Request, exc: BaseException, traceback: str
    ) -> None:
        self._notify("taskq_task_internal_error", task=task, request=request, exc=exc, traceback=traceback)

    def task_retry(self, task: Task[..., object], request: Request, reason: BaseException) -> None:
        self._notify("taskq_task_retry", task=task, request=request, reason=reason)

    def task_received(self, request: Request) -> None:
        self._notify("taskq_task_received", request=request)

    def task_unknown(self, app: App, name: str, task_id: str | None, message: Message) -> None:
        self._notify("taskq_task_unknown", app=app, name=name, task_id=task_id, message=message)

    def task_revoked(self, request: Request, terminated: bool, expired: bool) -> None:
        self._notify("taskq_task_revoked", request=request, terminated=terminated, expired=expired)

    def task_rejected(self, request: Request | None, reason: str) -> None:
        self._notify("taskq_task_rejected", request=request, reason=reason)

    # ---- Introspection ------------------------------------------------------------

    def describe(self) -> list[PluginInfo]:
        """Every plugin seen, loaded or not, with the drivers each offers."""
        for info in self.infos.values():
            info.drivers = {}
        for kind in DRIVER_KINDS:
            try:
                drivers = self.drivers(kind)
            except PluginError:
                continue
            for driver, entry in drivers.items():
                if entry.plugin in self.infos:
                    self.infos[entry.plugin].drivers.setdefault(kind, []).append(driver)
        # By module, which names the distribution's package: the distribution itself would
        # be read from metadata, and the worker's banner calls this at every start.
        return sorted(self.infos.values(), key=lambda i: (not i.is_builtin, i.module, i.name))


def load_plugins(
    enable: Iterable[str] | None = None,
    disable: Iterable[str] = (),
    *,
    extra: Iterable[object] = (),
) -> Plugins:
    """Discover entry-point plugins, keep the selected ones, and register them.

    ``enable``, when given, lists the only third-party plugins to load (core's built-ins
    always load unless disabled); ``disable`` removes plugins by entry-point name.
    ``extra`` registers plugin objects directly (used by tests and embedding). Plugins
    that are not selected are listed but never imported.
    """
    enabled = None if enable is None else set(enable)
    disabled = set(disable)
    plugins = Plugins()
    available: dict[str, EntryPoint] = {}
    for entry_point in _entry_points.entry_points(ENTRY_POINT_GROUP):
        available.setdefault(entry_point.name, entry_point)
    selected: list[str] = []
    for name, entry_point in sorted(available.items()):
        if name in disabled or not (is_core_module(entry_point.value) or enabled is None or name in enabled):
            plugins.infos[name] = PluginInfo(name, entry_point.value, enabled=False)
        else:
            selected.append(name)
    failures: dict[str, BaseException] = {}

    def record(_manager: object, entry_point: EntryPoint, exc: BaseException) -> None:
        if entry_point == available[entry_point.name]:  # not a second distribution's of that name
            failures[entry_point.name] = exc

    # stevedore imports the selected plugins only, each once; one that fails is reported
    # to ``record`` and the others still load.
    import stevedore  # here, not at the top: `import taskq` alone needs no discovery

    manager: stevedore.NamedExtensionManager[object] = stevedore.NamedExtensionManager(
        ENTRY_POINT_GROUP,
        names=selected,
        on_load_failure_callback=record,
        on_missing_entrypoints_callback=None,
    )
    loaded = {ext.name: ext.plugin for ext in manager.extensions if ext.entry_point == available[ext.name]}
    for name in selected:
        value = available[name].value
        if name in failures:
            exc = failures[name]
            info = PluginInfo(name, value, enabled=False, error=f"{type(exc).__name__}: {exc}")
            # Listed as FAILED by `taskq plugins`; the other plugins still load.
            logger.error("plugin %s (%s %s) failed to load: %s", name, info.distribution, info.version, info.error)
            plugins.infos[name] = info
            continue
        try:
            plugins._add(loaded[name], PluginInfo(name, value))
        except PluginError as exc:
            logger.error("%s", exc)
            plugins.record_failure(name, value, str(exc))
    for unknown in sorted((enabled or set()) - set(available)):
        plugins.record_failure(unknown, "?", "enabled in the configuration but not installed", origin=("?", "?"))
    for obj in extra:
        plugins.register(obj, distribution="(registered in code)", version="")
    return plugins


__all__ = [
    "DRIVER_KINDS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "Plugins",
    "import_string",
    "is_core_module",
    "load_plugins",
]

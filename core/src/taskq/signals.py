"""Signals for application code, with Celery's names and arguments: ``from taskq import signals``.

::

    from taskq import signals

    @signals.task_failure.connect
    def report(sender=None, task_id=None, exception=None, **kwargs):
        alert(f"{sender.name}[{task_id}] failed: {exception!r}")

    @signals.task_success.connect(sender=add)   # only for the task ``add``
    def added(sender=None, result=None, **kwargs): ...

A signal is the application's view of one of taskq's plugin hooks: while a signal has
receivers, a small plugin that implements its hook is registered with every app's plugin
manager (and with each one made later), and each call of the hook sends the signal with
Celery's keyword arguments. A signal with no receiver registers nothing, so it costs
nothing. Receivers take ``sender`` and keyword arguments (always add ``**kwargs``: more
may come); what one raises is logged, and the others still run.

``Signal("my_event")`` makes a signal of the application's own, sent with
:meth:`Signal.send`.
"""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from taskq.hookspecs import hookimpl

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.beat.service import Beat
    from taskq.drivers.pool import Pool
    from taskq.drivers.transport import Message
    from taskq.task import Task
    from taskq.worker.request import Request
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

Receiver = Callable[..., object]


class Signal:
    """Receivers to call, with a sender and keyword arguments, when something happens."""

    def __init__(self, name: str, providing_args: object = None, *, hook: str | None = None) -> None:
        self.name = name
        #: The plugin hook this signal listens to (None: sent by :meth:`send` only).
        self.hook = hook
        self._receivers: list[tuple[object, Receiver, object]] = []  # (key, receiver, sender)
        self._lock = threading.Lock()

    def connect(
        self, receiver: Receiver | None = None, *, sender: object = None, dispatch_uid: object = None, weak: bool = True
    ) -> Any:
        """Call ``receiver`` when the signal is sent (by ``sender`` only, when given).

        Used as ``@signal.connect``, or ``@signal.connect(sender=...)``. A second
        connection with the same ``dispatch_uid`` (or the same receiver and sender)
        replaces the first. ``weak`` is accepted for Celery's sake: receivers are kept.
        """
        if receiver is None:
            return lambda function: self.connect(function, sender=sender, dispatch_uid=dispatch_uid)
        if not callable(receiver):
            raise TypeError(f"signal {self.name}: a receiver must be callable, not {receiver!r}")
        key = dispatch_uid if dispatch_uid is not None else (id(receiver), id(sender))
        with self._lock:
            first = not self._receivers
            self._receivers = [entry for entry in self._receivers if entry[0] != key]
            self._receivers.append((key, receiver, sender))
        if first and self.hook is not None:
            _bridges.open(self)
        return receiver

    def disconnect(
        self, receiver: Receiver | None = None, *, sender: object = None, dispatch_uid: object = None
    ) -> bool:
        """Stop calling ``receiver``; whether it was connected."""
        key = dispatch_uid if dispatch_uid is not None else (id(receiver), id(sender))
        with self._lock:
            kept = [entry for entry in self._receivers if entry[0] != key]
            removed = len(kept) != len(self._receivers)
            self._receivers = kept
            last = removed and not kept
        if last and self.hook is not None:
            _bridges.close(self)
        return removed

    @property
    def receivers(self) -> list[Receiver]:
        return [receiver for _, receiver, _ in self._receivers]

    def send(self, sender: object = None, **named: object) -> list[tuple[Receiver, object]]:
        """Call every receiver (of this sender); returns ``(receiver, its return value or the
        exception it raised)``. An exception is logged and does not stop the others."""
        responses: list[tuple[Receiver, object]] = []
        for _, receiver, wanted in self._receivers:
            if wanted is not None and not _same_sender(wanted, sender):
                continue
            try:
                responses.append((receiver, receiver(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception("a receiver of signal %s raised: %r", self.name, receiver)
                responses.append((receiver, exc))
        return responses

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


def _same_sender(wanted: object, sender: object) -> bool:
    """A task matches itself or its name; any other sender matches itself or an equal value."""
    if wanted is sender:
        return True
    if isinstance(wanted, str) and getattr(sender, "name", None) == wanted:
        return True
    try:
        return bool(wanted == sender)
    except Exception:
        return False


# ---- From hooks to signals -------------------------------------------------------------


class _Bridges:
    """The plugins that turn hook calls into signals, registered with every app's plugin manager."""

    def __init__(self) -> None:
        self.active: dict[str, object] = {}  # plugin name -> plugin, for signals with receivers
        self._lock = threading.Lock()

    def open(self, signal: Signal) -> None:
        from taskq.plugins import live_plugin_managers

        plugin = _BRIDGE_MAKERS[signal.name]()
        name = f"taskq.signals.{signal.name}"
        with self._lock:
            if name in self.active:
                return
            self.active[name] = plugin
        for plugins in live_plugin_managers():
            plugins.register(plugin, name, distribution="taskq (signals)", version="")

    def close(self, signal: Signal) -> None:
        from taskq.plugins import live_plugin_managers

        name = f"taskq.signals.{signal.name}"
        with self._lock:
            plugin = self.active.pop(name, None)
        if plugin is not None:
            for plugins in live_plugin_managers():
                plugins.unregister(name)


_bridges = _Bridges()


def active_bridges() -> dict[str, object]:
    """The signal plugins to register with a new plugin manager (see taskq.plugins)."""
    return dict(_bridges.active)


def _bridge(hook: str, function: Callable[..., None]) -> Callable[[], object]:
    return lambda: types.SimpleNamespace(**{hook: hookimpl(function)})


# ---- The signals, as Celery names them --------------------------------------------------

task_received = Signal("task_received", hook="taskq_task_received")
task_prerun = Signal("task_prerun", hook="taskq_task_prerun")
task_postrun = Signal("task_postrun", hook="taskq_task_postrun")
task_success = Signal("task_success", hook="taskq_task_success")
task_failure = Signal("task_failure", hook="taskq_task_failure")
task_internal_error = Signal("task_internal_error", hook="taskq_task_internal_error")
task_retry = Signal("task_retry", hook="taskq_task_retry")
task_revoked = Signal("task_revoked", hook="taskq_task_revoked")
task_rejected = Signal("task_rejected", hook="taskq_task_rejected")
task_unknown = Signal("task_unknown", hook="taskq_task_unknown")
before_task_publish = Signal("before_task_publish", hook="taskq_before_publish")
after_task_publish = Signal("after_task_publish", hook="taskq_after_publish")
setup_logging = Signal("setup_logging", hook="taskq_setup_logging")
after_setup_logger = Signal("after_setup_logger", hook="taskq_after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger", hook="taskq_after_setup_task_logger")
celeryd_init = Signal("celeryd_init", hook="taskq_before_worker_setup")
celeryd_after_setup = Signal("celeryd_after_setup", hook="taskq_after_worker_setup")
worker_init = Signal("worker_init", hook="taskq_worker_init")
worker_ready = Signal("worker_ready", hook="taskq_worker_ready")
worker_shutdown = Signal("worker_shutdown", hook="taskq_worker_shutdown")
worker_shutting_down = Signal("worker_shutting_down", hook="taskq_worker_shutting_down")
heartbeat_sent = Signal("heartbeat_sent", hook="taskq_heartbeat_sent")
worker_before_create_process = Signal("worker_before_create_process", hook="taskq_before_create_process")
worker_process_init = Signal("worker_process_init", hook="taskq_worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown", hook="taskq_worker_process_shutdown")
beat_init = Signal("beat_init", hook="taskq_beat_init")
beat_embedded_init = Signal("beat_embedded_init", hook="taskq_beat_embedded_init")
eventlet_pool_started = Signal("eventlet_pool_started", hook="taskq_eventlet_pool_started")
eventlet_pool_preshutdown = Signal("eventlet_pool_preshutdown", hook="taskq_eventlet_pool_stopping")
eventlet_pool_postshutdown = Signal("eventlet_pool_postshutdown", hook="taskq_eventlet_pool_stopped")
eventlet_pool_apply = Signal("eventlet_pool_apply", hook="taskq_eventlet_pool_apply")
import_modules = Signal("import_modules", hook="taskq_before_import_modules")
user_preload_options = Signal("user_preload_options", hook="taskq_cli_app_loaded")


def _on_received(request: Request) -> None:
    task_received.send(sender=None, request=request)


def _on_prerun(task: Task[..., object], request: Request) -> None:
    task_prerun.send(sender=task, task_id=request.id, task=task, args=request.args, kwargs=request.kwargs)


def _on_postrun(task: Task[..., object], request: Request, state: str, retval: object) -> None:
    task_postrun.send(
        sender=task, task_id=request.id, task=task, args=request.args, kwargs=request.kwargs, retval=retval, state=state
    )


def _on_success(task: Task[..., object], request: Request, retval: object) -> None:
    task_success.send(sender=task, result=retval)


def _on_failure(task: Task[..., object], request: Request, exc: BaseException, traceback: str) -> None:
    from taskq.task import ExceptionInfo

    task_failure.send(
        sender=task,
        task_id=request.id,
        exception=exc,
        args=request.args,
        kwargs=request.kwargs,
        traceback=exc.__traceback__,
        einfo=ExceptionInfo(exc, traceback),
    )


def _on_internal_error(task: Task[..., object], request: Request, exc: BaseException, traceback: str) -> None:
    from taskq.task import ExceptionInfo

    task_internal_error.send(
        sender=task,
        task_id=request.id,
        args=request.args,
        kwargs=request.kwargs,
        request=request.context(),
        exception=exc,
        traceback=exc.__traceback__,
        einfo=ExceptionInfo(exc, traceback),
    )


def _on_retry(task: Task[..., object], request: Request, reason: BaseException) -> None:
    task_retry.send(sender=task, request=request.context(), reason=reason, einfo=None)


def _on_revoked(request: Request, terminated: bool, expired: bool) -> None:
    task_revoked.send(sender=request.task, request=request, terminated=terminated, signum=None, expired=expired)


def _on_rejected(request: Request | None, reason: str) -> None:
    message = request.delivery.message if request is not None else None
    task_rejected.send(sender=None, message=message, exc=None, reason=reason)


def _on_unknown(app: App, name: str, task_id: str | None, message: Message) -> None:
    from taskq.errors import NotRegisteredError

    error = NotRegisteredError(f"task {name!r} is not registered")
    task_unknown.send(sender=None, name=name, id=task_id, message=message, exc=error)


def _on_before_publish(app: App, name: str, task_id: str, headers: dict[str, object], queue: str) -> None:
    before_task_publish.send(
        sender=name, body=None, exchange="", routing_key=queue, headers=headers, properties={}, declare=[]
    )


def _on_after_publish(app: App, name: str, task_id: str, queue: str) -> None:
    after_task_publish.send(
        sender=name, body=None, exchange="", routing_key=queue, headers={"id": task_id, "task": name}
    )


def _on_cli_app_loaded(app: App, options: Mapping[str, object]) -> None:
    user_preload_options.send(sender=app, app=app, options=dict(options))


def _on_import_modules(app: App) -> None:
    import_modules.send(sender=app)


def _on_setup_logging(app: App, loglevel: str, format: str) -> None:  # noqa: A002 - Celery's name
    setup_logging.send(sender=None, loglevel=loglevel, logfile=None, format=format, colorize=False)


def _on_after_setup_logger(app: App, logger: logging.Logger, loglevel: str, format: str) -> None:  # noqa: A002
    after_setup_logger.send(sender=None, logger=logger, loglevel=loglevel, logfile=None, format=format, colorize=False)


def _on_before_worker_setup(worker: Worker, options: Mapping[str, object]) -> None:
    celeryd_init.send(sender=worker.hostname, instance=worker, conf=worker.app.conf, options=dict(options))


def _on_after_worker_setup(worker: Worker) -> None:
    celeryd_after_setup.send(sender=worker.hostname, instance=worker, conf=worker.app.conf)


def _on_after_setup_task_logger(app: App, logger: logging.Logger, loglevel: str, format: str) -> None:  # noqa: A002
    after_setup_task_logger.send(
        sender=None, logger=logger, loglevel=loglevel, logfile=None, format=format, colorize=False
    )


def _on_worker_init(worker: Worker) -> None:
    worker_init.send(sender=worker)


def _on_worker_ready(worker: Worker) -> None:
    worker_ready.send(sender=worker)


def _on_worker_shutdown(worker: Worker) -> None:
    worker_shutdown.send(sender=worker)


def _on_worker_shutting_down(worker: Worker, cold: bool) -> None:
    worker_shutting_down.send(sender=worker.hostname, sig=None, how="Cold" if cold else "Warm", exitcode=0)


def _on_before_create_process(worker: Worker) -> None:
    worker_before_create_process.send(sender=worker.pool)


def _on_worker_process_init(worker: Worker) -> None:
    worker_process_init.send(sender=None)


def _on_worker_process_shutdown(worker: Worker, pid: int) -> None:
    worker_process_shutdown.send(sender=None, pid=pid, exitcode=0)


def _on_heartbeat_sent(worker: Worker) -> None:
    heartbeat_sent.send(sender=worker)


def _on_beat_init(beat: Beat) -> None:
    beat_init.send(sender=beat)


def _on_beat_embedded_init(beat: Beat) -> None:
    beat_embedded_init.send(sender=beat)


def _on_eventlet_pool_started(pool: Pool) -> None:
    eventlet_pool_started.send(sender=pool)


def _on_eventlet_pool_stopping(pool: Pool) -> None:
    eventlet_pool_preshutdown.send(sender=pool)


def _on_eventlet_pool_stopped(pool: Pool) -> None:
    eventlet_pool_postshutdown.send(sender=pool)


def _on_eventlet_pool_apply(pool: Pool, target: Callable[..., object], args: tuple[object, ...]) -> None:
    eventlet_pool_apply.send(sender=pool, target=target, args=args, kwargs={})


_BRIDGE_MAKERS: dict[str, Callable[[], object]] = {
    signal.name: _bridge(str(signal.hook), function)
    for signal, function in (
        (task_received, _on_received),
        (task_prerun, _on_prerun),
        (task_postrun, _on_postrun),
        (task_success, _on_success),
        (task_failure, _on_failure),
        (task_internal_error, _on_internal_error),
        (task_retry, _on_retry),
        (task_revoked, _on_revoked),
        (task_rejected, _on_rejected),
        (task_unknown, _on_unknown),
        (before_task_publish, _on_before_publish),
        (after_task_publish, _on_after_publish),
        (setup_logging, _on_setup_logging),
        (after_setup_logger, _on_after_setup_logger),
        (after_setup_task_logger, _on_after_setup_task_logger),
        (celeryd_init, _on_before_worker_setup),
        (celeryd_after_setup, _on_after_worker_setup),
        (worker_init, _on_worker_init),
        (worker_ready, _on_worker_ready),
        (worker_shutdown, _on_worker_shutdown),
        (worker_shutting_down, _on_worker_shutting_down),
        (heartbeat_sent, _on_heartbeat_sent),
        (worker_before_create_process, _on_before_create_process),
        (worker_process_init, _on_worker_process_init),
        (worker_process_shutdown, _on_worker_process_shutdown),
        (beat_init, _on_beat_init),
        (beat_embedded_init, _on_beat_embedded_init),
        (eventlet_pool_started, _on_eventlet_pool_started),
        (eventlet_pool_preshutdown, _on_eventlet_pool_stopping),
        (eventlet_pool_postshutdown, _on_eventlet_pool_stopped),
        (eventlet_pool_apply, _on_eventlet_pool_apply),
        (import_modules, _on_import_modules),
        (user_preload_options, _on_cli_app_loaded),
    )
}


__all__ = [
    "Signal",
    "after_setup_logger",
    "after_setup_task_logger",
    "after_task_publish",
    "beat_embedded_init",
    "beat_init",
    "before_task_publish",
    "celeryd_after_setup",
    "celeryd_init",
    "eventlet_pool_apply",
    "eventlet_pool_postshutdown",
    "eventlet_pool_preshutdown",
    "eventlet_pool_started",
    "heartbeat_sent",
    "import_modules",
    "setup_logging",
    "task_failure",
    "task_internal_error",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_success",
    "task_unknown",
    "user_preload_options",
    "worker_before_create_process",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
    "worker_shutting_down",
]

# mypy: disable-error-code="empty-body"
"""The plugin contract: every hook a taskq plugin can implement, in the order they fire.

A plugin is a module named by an entry point in the group ``taskq.plugins``; its
functions decorated with :data:`hookimpl` implement the hooks below. Driver hooks
(``taskq_register_*``) return *import strings* (``"package.module:Class"``) naming
subclasses of the base classes in :mod:`taskq.drivers`, the driver API: taskq imports
only the driver that is selected, so a plugin module stays cheap to import. Every type
a hook names is in :mod:`taskq.drivers` or the user API (:mod:`taskq`).

An implementation takes only the arguments it uses; specs gain arguments over time
without breaking plugins. Hooks on the per-message path are skipped entirely when no
plugin implements them, and an exception raised in an event hook is logged with the
plugin's name: it never loses a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from taskq import App, Task
    from taskq.drivers import Command, Message, Pool, Request, Serializer, Worker

PROJECT = "taskq"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---- Drivers: what a plugin provides ---------------------------------------------


@hookspec
def taskq_register_transports() -> Mapping[str, str]:
    """Offer broker transports by URL scheme. Added in 0.1.

    Return ``{scheme: "package.module:Class"}`` where the class subclasses
    :class:`taskq.drivers.Transport`; ``broker_url = "sqlite:///taskq.db"`` selects the
    ``sqlite`` scheme. Called once per process when the broker is first used; only the
    selected class is imported. All answers are collected; two plugins offering the same
    scheme is a configuration error that names both.
    """


@hookspec
def taskq_register_result_backends() -> Mapping[str, str]:
    """Offer result backends by URL scheme. Added in 0.1.

    Return ``{scheme: "package.module:Class"}`` where the class subclasses
    :class:`taskq.drivers.ResultBackend` (usually through ``KeyValueBackend``).
    Called once per process when results are first used; answers are collected.
    """


@hookspec
def taskq_register_pools() -> Mapping[str, str]:
    """Offer concurrency pools by the name given to ``--pool``. Added in 0.1.

    Return ``{name: "package.module:Class"}`` where the class subclasses
    :class:`taskq.drivers.Pool`. Called once, when the worker resolves its pool; only the
    selected class is ever imported. Answers are collected.
    """


@hookspec
def taskq_register_schedulers() -> Mapping[str, str]:
    """Offer beat schedulers by the name given to ``--scheduler``. Added in 0.1.

    Return ``{name: "package.module:Class"}`` where the class subclasses
    :class:`taskq.drivers.Scheduler` (it overrides ``open``, ``load_state``, ``save_state``
    and ``close``). Called once, when beat starts (``taskq beat``, ``worker -B``);
    answers are collected.
    """


@hookspec
def taskq_register_serializers() -> Mapping[str, Serializer | str]:
    """Offer serializers by name (``task_serializer = "msgpack"``). Added in 0.1.

    Return ``{name: Serializer}`` or ``{name: "package.module:attr"}`` naming a
    :class:`taskq.drivers.Serializer`. Called once per process when the app first
    encodes or decodes; answers are collected. Whether a worker *accepts* a content type
    is decided by ``accept_content``, not by being registered.
    """


@hookspec
def taskq_register_bootsteps() -> Mapping[str, Sequence[str]]:
    """Add steps to the worker's blueprint. Added in 0.1.

    Return ``{"worker": ["package.module:Step", ...]}``; each class subclasses
    :class:`taskq.drivers.Step` and states what it ``requires``. Called once,
    in the worker's main process, as the blueprint is built.
    """


@hookspec
def taskq_register_commands() -> Mapping[str, str]:
    """Add subcommands to the ``taskq`` command line. Added in 0.1.

    Return ``{name: "package.module:command"}`` naming a :class:`click.Command`. The
    command is imported only when it is run (or when ``taskq --help`` lists it). Called
    once per CLI invocation.
    """


@hookspec
def taskq_register_control_commands() -> Sequence[Command]:
    """Add remote control commands that workers answer. Added in 0.2.

    Return :class:`taskq.drivers.Command` objects, made with the
    :func:`taskq.drivers.command` decorator: ``handler(state, **arguments)`` gets
    the worker's :class:`~taskq.drivers.ControlState` and returns the reply (a
    JSON value). ``taskq inspect NAME`` or ``taskq control NAME`` sends it, by its
    ``kind``; Celery's ``app.control.broadcast(NAME, reply=True)`` reaches it too. A
    plugin's command replaces a built-in of the same name. Called once per worker start
    and per CLI invocation.
    """


# ---- Start-up ----------------------------------------------------------------------


@hookspec
def taskq_early_init(pool: str | None, argv: Sequence[str]) -> None:
    """Run before the user's app module is imported. Added in 0.1.

    ``pool`` is the pool the command line or the config file selected (``None`` when
    none was chosen); ``argv`` the command's arguments. This is where a green-thread pool
    monkey-patches the standard library. Called once per ``taskq`` command, in the main
    process; keep it quick and do nothing unless your driver is the one selected.
    """


@hookspec
def taskq_app_configured(app: App) -> None:
    """The app's settings are final (file, environment and flags merged). Added in 0.1.

    Called once per app and process, the first time its plugins are needed.
    """


@hookspec
def taskq_cli_app_loaded(app: App, options: Mapping[str, object]) -> None:
    """The ``taskq`` command read its top-level options and loaded the app. Added in 0.2.

    ``options`` holds those options by name: ``app`` (``-A``, which may also follow the
    subcommand) and ``config`` (``--config``), ``None`` where not given. Called once per
    command that uses an app (``worker``, ``beat``, ``call``, ...), in the CLI's process,
    right after the app's module is imported and before the command does anything with it.
    """


@hookspec
def taskq_before_import_modules(app: App) -> None:
    """The app is about to import its task modules (``imports`` and ``include``). Added in 0.2.

    Called once per app and process, where a worker or beat starts (``App.import_task_modules``),
    before the first of them is imported, even when none is listed: the place to prepare
    what those modules need (a framework's setup), or to change ``app.conf.imports``.
    """


# ---- Worker lifecycle --------------------------------------------------------------


@hookspec
def taskq_setup_logging(app: App, loglevel: str, format: str) -> None:  # noqa: A002 - Celery's name
    """The worker command is about to set logging up. Added in 0.2.

    Implemented, it replaces the worker's own set-up (a root handler with the worker's
    format): the implementation configures logging itself. Called once, in the CLI.
    """


@hookspec
def taskq_after_setup_logger(app: App, logger: logging.Logger, loglevel: str, format: str) -> None:  # noqa: A002
    """The worker command set its root logger up; plugins may add handlers. Added in 0.2."""


@hookspec
def taskq_after_setup_task_logger(app: App, logger: logging.Logger, loglevel: str, format: str) -> None:  # noqa: A002
    """The worker command set logging up; ``logger`` writes the task lines. Added in 0.2.

    taskq has no task logger of its own: its lines about tasks (``Task add[...] succeeded
    in ...``, raised, retried, revoked) go through ``logger`` (``taskq.worker.endings``),
    which passes them to the root logger's handler; a plugin may add a filter or a handler
    of its own (then set ``logger.propagate = False``, or each line is written twice).
    Called once, in the CLI, right after ``taskq_after_setup_logger`` and in the same case.
    """


@hookspec
def taskq_before_worker_setup(worker: Worker, options: Mapping[str, object]) -> None:
    """A worker is about to be set up: nothing is read from the settings yet. Added in 0.2.

    ``worker`` has only ``app`` and ``hostname`` so far; ``options`` are the keyword
    arguments it was built with (``queues``, ``concurrency``, ``pool``, ...; ``None``
    where not given), to read. Change the settings the worker reads as it is set up
    (``worker_*``, ``task_default_queue``) with ``worker.app.conf.update(...)``. Called
    once per worker, in its main process, first thing, before ``taskq_worker_init``.
    """


@hookspec
def taskq_worker_init(worker: Worker) -> None:
    """The worker is built but not started; plugins may adjust it. Added in 0.1.

    Called once, in the worker's main process.
    """


@hookspec
def taskq_after_worker_setup(worker: Worker) -> None:
    """A worker is set up and about to start its steps and consume. Added in 0.2.

    Its pool is made but not started, its task modules are imported, and its queues
    (``worker.queues``) are not read yet: a plugin may still add or remove queues. Called
    once per worker, in its main process, as :meth:`Worker.start` begins, after
    ``taskq_worker_init`` and before ``taskq_worker_ready``.
    """


@hookspec
def taskq_worker_ready(worker: Worker) -> None:
    """The worker is consuming. Added in 0.1. Called once, in the main process."""


@hookspec
def taskq_worker_shutdown(worker: Worker) -> None:
    """The worker is stopping; its pool and connections are still open. Added in 0.1.

    Called once, in the main process, after consuming has stopped.
    """


@hookspec
def taskq_worker_shutting_down(worker: Worker, cold: bool) -> None:
    """The worker was asked to stop (warm, or ``cold`` at the second signal). Added in 0.2.

    Called in the main process as the stop is asked for (from the signal handler of the
    CLI's worker), before anything has stopped: once for a warm stop, once more if it
    turns cold.
    """


@hookspec
def taskq_before_create_process(worker: Worker) -> None:
    """A pool of processes is about to start one (prefork forks a child). Added in 0.2.

    Called in the worker's main process (from whichever of its threads starts the child),
    before each child the pool starts: the first ones, and each that replaces a child that
    retired or died. ``worker.pool`` is the pool. A pool without processes of its own never
    calls it. Close what a child must not inherit here.
    """


@hookspec
def taskq_worker_process_init(worker: Worker) -> None:
    """A pool process starts (prefork's children), before it runs a task. Added in 0.2.

    Called in that process; a pool without processes of its own never calls it.
    """


@hookspec
def taskq_worker_process_shutdown(worker: Worker, pid: int) -> None:
    """A pool process leaves (retired, or the pool stops). Added in 0.2. Called in it."""


@hookspec
def taskq_eventlet_pool_started(pool: Pool) -> None:
    """The eventlet pool started (taskq-eventlet's ``--pool=eventlet``). Added in 0.2.

    Called once, by the pool, in the thread that starts it (the worker's main thread), once
    its hub takes tasks. Other pools never call the ``taskq_eventlet_pool_*`` hooks.
    """


@hookspec
def taskq_eventlet_pool_stopping(pool: Pool) -> None:
    """The eventlet pool was asked to stop: its tasks may still run. Added in 0.2.

    Called once, by the pool, in the thread that stops it, before it waits for its running
    tasks (or, for a cold stop, stops them).
    """


@hookspec
def taskq_eventlet_pool_stopped(pool: Pool) -> None:
    """The eventlet pool stopped: none of its tasks runs any more. Added in 0.2.

    Called once, by the pool, in the thread that stopped it, after
    ``taskq_eventlet_pool_stopping``.
    """


@hookspec
def taskq_eventlet_pool_apply(pool: Pool, target: Callable[..., object], args: tuple[object, ...]) -> None:
    """The eventlet pool is handed a task, to run as ``target(*args)``. Added in 0.2.

    ``target`` is the worker's tracer and ``args`` is ``(app, request)``. Called per task,
    by the pool, in the thread that hands it the task (the worker's), before its green
    thread is spawned: it must be quick. Skipped when no plugin implements it.
    """


@hookspec
def taskq_heartbeat_sent(worker: Worker) -> None:
    """The worker wrote its heartbeat to the result backend. Added in 0.2.

    Called in the main process after each heartbeat (every few seconds).
    """


@hookspec
def taskq_beat_init(beat: object) -> None:
    """A beat service starts, before its scheduler is set up. Added in 0.2. Called once.

    ``beat`` is the beat service (``beat.app``, ``beat.scheduler``).
    """


@hookspec
def taskq_beat_embedded_init(beat: object) -> None:
    """A beat service starts in a worker (``taskq worker -B``). Added in 0.2.

    Called once, in the beat's thread of the worker's main process, right after
    ``taskq_beat_init`` (so before the scheduler is set up); never for ``taskq beat``.
    ``beat`` is the beat service, as for ``taskq_beat_init``.
    """


# ---- Publishing --------------------------------------------------------------------


@hookspec
def taskq_before_publish(app: App, name: str, task_id: str, headers: dict[str, object], queue: str) -> None:
    """A task message is about to be sent; ``headers`` may be changed. Added in 0.1.

    Called per message on the client, in the publishing thread: keep it quick. It is
    skipped when no plugin implements it.
    """


@hookspec
def taskq_message_encoded(app: App, message: Message) -> None:
    """A task message is encoded and about to be handed to the broker. Added in 0.2.

    ``message`` is the :class:`~taskq.drivers.Message` exactly as it will be
    published (body bytes, headers, content type and encoding, properties); a plugin may
    add headers to it (taskq-security signs it here) but should not change what is already
    there. Called per message, on the client and wherever a worker sends (retries, chain
    steps, callbacks, chord bodies), in the sending thread, after ``taskq_before_publish``;
    skipped when no plugin implements it. An exception stops the send and reaches the
    caller.
    """


@hookspec
def taskq_after_publish(app: App, name: str, task_id: str, queue: str) -> None:
    """A task message was handed to the broker. Added in 0.1.

    Called per message on the client; skipped when no plugin implements it.
    """


# ---- Worker intake -----------------------------------------------------------------


@hookspec(firstresult=True)
def taskq_message_received(app: App, message: Message) -> str | None:
    """A worker claimed a message and has decoded nothing of it yet. Added in 0.2.

    ``message`` is the :class:`~taskq.drivers.Message` as the transport handed
    it over: every header and byte in it is untrusted. Return ``None`` to let the worker
    decode it, or a reason (``"bad signature: ..."``) to have it dead-lettered once with
    that reason instead; the first reason returned wins (``firstresult``). Called per
    message, in the worker's main process, before protocol decoding; it must be quick and
    must not raise on any input. An exception dead-letters the message with the plugin's
    name in the reason, except a ``taskq.errors.ConfigError`` (the plugin is misconfigured
    and can check nothing), which stops the worker. Skipped when no plugin implements it.
    """


# ---- Task execution ----------------------------------------------------------------


@hookspec
def taskq_task_received(request: Request) -> None:
    """The worker took a task message and made its request (not yet due, maybe). Added in 0.2.

    Called per message, in the worker's main process; skipped when no plugin implements it.
    """


@hookspec
def taskq_task_unknown(app: App, name: str, task_id: str | None, message: Message) -> None:
    """The worker got a message for a task it does not know (it dead-letters it). Added in 0.2.

    Called in the worker's main process.
    """


@hookspec
def taskq_task_prerun(task: Task[..., object], request: Request) -> None:
    """A task is about to run. Added in 0.1.

    Called per task, in the process (or thread) that runs it, just before the task's
    function. Exceptions are logged and the task runs anyway.
    """


@hookspec
def taskq_task_postrun(task: Task[..., object], request: Request, state: str, retval: object) -> None:
    """A task has run, whatever its outcome (``state`` says it). Added in 0.1.

    Called per task, where the task ran, after its result was stored.
    """


@hookspec
def taskq_task_success(task: Task[..., object], request: Request, retval: object) -> None:
    """A task returned normally. Added in 0.1. Called per task, where it ran."""


@hookspec
def taskq_task_failure(task: Task[..., object], request: Request, exc: BaseException, traceback: str) -> None:
    """A task raised (and will not be retried). Added in 0.1. Called where it ran."""


@hookspec
def taskq_task_internal_error(task: Task[..., object], request: Request, exc: BaseException, traceback: str) -> None:
    """The worker's own part failed around a task, not the task's function. Added in 0.2.

    Where the task ran, something the worker does before or after the function raised
    ``exc`` (sending the next step of a chain to a broker that refuses it, say);
    ``traceback`` is its formatted traceback. The task is then recorded as failed:
    ``taskq_task_failure`` follows. Called per such error, where the task ran; nothing is
    done for it on the usual path, and it is skipped when no plugin implements it.
    """


@hookspec
def taskq_task_retry(task: Task[..., object], request: Request, reason: BaseException) -> None:
    """A task asked to be retried. Added in 0.1. Called per retry, where it ran."""


@hookspec
def taskq_task_revoked(request: Request, terminated: bool, expired: bool) -> None:
    """A task was revoked: skipped before it ran, or stopped while running. Added in 0.1.

    ``terminated`` is true when the task was running and its pool stopped it
    (``revoke(terminate=True)``); ``expired`` when it was skipped because its ``expires``
    time had passed. Called in the worker's main process, once per task.
    """


@hookspec
def taskq_task_rejected(request: Request | None, reason: str) -> None:
    """The worker set a message aside (dead-lettered it) instead of running it. Added in 0.1.

    ``request`` is the task request when the task itself rejected its message
    (``Reject``), and ``None`` when the worker refused the message before building one:
    it could not be decoded, named an unknown task, or was a poison message. ``reason``
    says which. Called in the worker's main process.
    """


__all__ = ["PROJECT", "hookimpl", "hookspec"]

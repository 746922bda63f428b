"""``taskq worker``: its options and what it does, in code that does not import click.

Importing click costs a worker 20-50 ms of its start-up (#5), so the usual invocations
skip it: :func:`taskq.cli.main.main` reads them with the table :data:`WORKER_OPTIONS`,
the same table the click command in :mod:`taskq.cli.commands` is built from, and both
end in :func:`run_worker`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, cast

from taskq import __version__

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.cli.state import CLIState
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The worker's level without ``-l``: Celery's. At INFO a worker writes two lines per task
#: (received, succeeded), which costs a fifth of a no-op drain; ``-l info`` shows them.
DEFAULT_LOG_LEVEL = "WARNING"


@dataclass(frozen=True)
class WorkerOption:
    """One option of ``taskq worker``; ``name`` is the parameter of :func:`run_worker` it fills."""

    flags: tuple[str, ...]
    name: str
    help: str | None = None
    #: What the value is converted to: str, int or float.
    value_type: type[str] | type[int] | type[float] = str
    #: A file's path: a folder is refused (click.Path(dir_okay=False)).
    is_file_path: bool = False
    #: The only values allowed, in any case; the value becomes the one listed here.
    choices: tuple[str, ...] = ()
    default: str | None = None
    metavar: str | None = None
    #: A switch that takes no value (``-B``): True when given.
    is_flag: bool = False

    def convert(self, raw: str) -> object:
        """The value click would pass for ``raw``; ValueError where click would refuse it."""
        if self.is_flag:
            return raw == "true"
        if self.choices:
            for choice in self.choices:
                if choice.casefold() == raw.casefold():
                    return choice
            raise ValueError(f"{raw!r} is not one of {', '.join(self.choices)}")
        if self.is_file_path and os.path.isdir(raw):
            raise ValueError(f"{raw!r} is a folder")
        return self.value_type(raw)


#: The options of ``taskq worker`` (besides ``-A``), in the order ``--help`` lists them.
WORKER_OPTIONS = (
    WorkerOption(
        ("-Q", "--queues"),
        "queues",
        "Comma-separated queues to consume (default: task_queues, else task_default_queue).",
    ),
    WorkerOption(("-X", "--exclude-queues"), "exclude_queues", "Comma-separated queues not to consume."),
    WorkerOption(("-c", "--concurrency"), "concurrency", "Tasks run at once (default: CPUs; 1 for solo).", int),
    WorkerOption(("-P", "--pool"), "pool", "Pool name, e.g. solo, prefork, thread, gevent."),
    WorkerOption(("-l", "--loglevel"), "loglevel", choices=LOG_LEVELS, default=DEFAULT_LOG_LEVEL),
    WorkerOption(("-n", "--hostname"), "hostname", "Worker name (default taskq@HOST)."),
    WorkerOption(
        ("--prefetch-multiplier",), "prefetch_multiplier", "Messages held per concurrency slot; 0: only what runs.", int
    ),
    WorkerOption(
        ("--autoscale",),
        "autoscale",
        "Grow the pool up to MAX under load, shrink to MIN when idle.",
        metavar="MAX,MIN",
    ),
    WorkerOption(("-S", "--statedb"), "statedb", "File that keeps revoked ids across restarts.", is_file_path=True),
    WorkerOption(
        ("--health-file",),
        "health_file",
        "Touched every 2 s while consuming (see `taskq health`).",
        is_file_path=True,
    ),
    WorkerOption(("--time-limit",), "time_limit", "Hard time limit for every task, in seconds.", float),
    WorkerOption(("--soft-time-limit",), "soft_time_limit", "Soft time limit for every task, in seconds.", float),
    WorkerOption(
        ("--max-tasks-per-child",), "max_tasks_per_child", "Replace a pool process after this many tasks.", int
    ),
    WorkerOption(
        ("--max-memory-per-child",),
        "max_memory_per_child",
        "Replace a pool process above this resident memory (KiB).",
        int,
    ),
    WorkerOption(
        ("-E", "--task-events"),
        "task_events",
        "Send task events for monitors (taskq events, Flower); as worker_send_task_events.",
        is_flag=True,
        default="false",
    ),
    WorkerOption(
        ("-B", "--beat"),
        "beat",
        "Also run beat, sending periodic tasks, in this worker (run one beat per schedule).",
        is_flag=True,
        default="false",
    ),
    WorkerOption(
        ("-s", "--schedule"),
        "schedule",
        "Beat's schedule file with -B (default: beat_schedule_filename).",
        is_file_path=True,
    ),
    WorkerOption(("--scheduler",), "scheduler", "Beat's scheduler with -B (default: beat_scheduler)."),
    WorkerOption(
        ("--without-mingle",),
        "without_mingle",
        "Do not ask the other workers for their revoked ids at start (worker_mingle = false).",
        is_flag=True,
        default="false",
    ),
    WorkerOption(
        ("--without-gossip",),
        "without_gossip",
        "Do not follow the other workers' events (worker_gossip = false).",
        is_flag=True,
        default="false",
    ),
    WorkerOption(("--config",), "worker_config", "Config file (TOML).", is_file_path=True),
)


def run_worker(
    state: CLIState,
    *,
    queues: str | None = None,
    exclude_queues: str | None = None,
    concurrency: int | None = None,
    pool: str | None = None,
    loglevel: str = DEFAULT_LOG_LEVEL,
    hostname: str | None = None,
    prefetch_multiplier: int | None = None,
    autoscale: str | None = None,
    statedb: str | None = None,
    health_file: str | None = None,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    max_tasks_per_child: int | None = None,
    max_memory_per_child: int | None = None,
    task_events: bool = False,
    beat: bool = False,
    schedule: str | None = None,
    scheduler: str | None = None,
    worker_config: str | None = None,
    without_mingle: bool = False,
    without_gossip: bool = False,
) -> None:
    """Start a worker and consume until it is stopped (see ``taskq worker --help``)."""
    if worker_config:
        state.config = worker_config
        os.environ["TASKQ_CONFIG"] = worker_config
    chosen_pool = pool or cast("str | None", state.settings["worker_pool"])
    # Before the app is imported: green pools monkey-patch here.
    state.plugins.early_init(chosen_pool, sys.argv[1:])
    app = state.app
    configure_logging(app, loglevel.upper())
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    excluded = [q.strip() for q in exclude_queues.split(",") if q.strip()] if exclude_queues else []
    overrides = {
        "task_time_limit": time_limit,
        "task_soft_time_limit": soft_time_limit,
        "worker_max_tasks_per_child": max_tasks_per_child,
        "worker_max_memory_per_child": max_memory_per_child,
        "worker_send_task_events": True if task_events else None,
        "worker_mingle": False if without_mingle else None,
        "worker_gossip": False if without_gossip else None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        app.conf.update(**overrides)
        for task in app.tasks.values():
            task.resolve_defaults()
    w = app.Worker(
        queues=queue_list,
        exclude_queues=excluded,
        concurrency=concurrency,
        pool=pool,
        hostname=hostname,
        prefetch_multiplier=prefetch_multiplier,
        autoscale=autoscale,
        state_db=statedb,
        health_file=health_file,
        beat=beat,
        scheduler=scheduler,
        schedule_filename=schedule,
    )
    if logging.getLogger().isEnabledFor(logging.WARNING):  # as Celery's, shown at its default level
        sys.stderr.write(_banner(app, w) + "\n")
        sys.stderr.flush()
    restart = _install_signal_handlers(w)
    w.start()
    if restart.is_set():
        logger.warning("restarting: %s", " ".join(sys.argv))
        os.execv(sys.executable, [sys.executable, "-m", "taskq", *sys.argv[1:]])  # noqa: S606 - our own argv


class RedactingFormatter(logging.Formatter):
    """Formats a record, then masks every URL and credential in it (tracebacks included).

    Libraries log through the root logger too, and some print credentials at debug level
    (botocore its signed requests, with the access key id): no line leaves unmasked.
    """

    def format(self, record: logging.LogRecord) -> str:
        from taskq.drivers.support.connections import redact

        return redact(super().format(record))


def configure_logging(app: App, level: str) -> None:
    """The worker's logging: a plugin's (``taskq_setup_logging``, the ``setup_logging``
    signal), else a root handler of its own when ``worker_hijack_root_logger``, which
    ``taskq_after_setup_logger`` may then add to, and ``taskq_after_setup_task_logger``
    to the logger of the task lines."""
    log_format = str(app.conf["worker_log_format"])
    plugins = app.plugins
    if plugins.has_impl("taskq_setup_logging"):
        plugins.setup_logging(app, level, log_format)  # as Celery: whoever listens sets logging up
    elif app.conf["worker_hijack_root_logger"]:
        setup_logging(level, log_format)
        if plugins.has_impl("taskq_after_setup_logger"):
            plugins.after_setup_logger(app, logging.getLogger(), level, log_format)
        if plugins.has_impl("taskq_after_setup_task_logger"):
            from taskq.worker.endings import logger as task_logger

            plugins.after_setup_task_logger(app, task_logger, level, log_format)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _banner(app: App, worker: Worker) -> str:
    from taskq.drivers.support.connections import mask_url

    def mask(url: str | None) -> str:
        return mask_url(url) if url else "disabled"

    plugin_names = ", ".join(info.name for info in app.plugins.describe() if info.enabled)
    own = sorted(name for name in app.tasks if not name.startswith("celery."))  # not the built-in ones
    lines = [
        f"taskq {__version__} worker {worker.hostname}",
        f"  app:         {app.main or '__main__'} ({len(own)} tasks)",
        f"  broker:      {mask(str(app.conf['broker_url']))}",
        f"  results:     {mask(app.backend_url)}",
        f"  pool:        {worker.pool_name} (concurrency {worker.concurrency}, prefetch {worker.prefetch_count})",
        f"  queues:      {', '.join(worker.queues)}",
        f"  plugins:     {plugin_names}",
        "  tasks:",
        *[f"    . {name}" for name in own],
    ]
    return "\n".join(lines)


def _install_signal_handlers(worker: Worker) -> threading.Event:
    """Warm stop on the first SIGTERM/SIGINT, cold on the second; SIGHUP restarts.

    Returns an event that is set when the worker should start again after stopping.
    """
    signals_seen = 0
    restart = threading.Event()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        logger.warning("SIGHUP: warm shutdown, then restart")
        restart.set()
        worker.stop()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        name = signal.Signals(signum).name
        if signals_seen == 1 and signum != signal.SIGQUIT:
            logger.warning("%s: warm shutdown (finishing running tasks; send again for cold)", name)
            worker.stop()
        else:
            logger.warning("%s: cold shutdown (interrupting running tasks)", name)
            worker.stop(cold=True)
            raise SystemExit(1)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    return restart


__all__ = ["DEFAULT_LOG_LEVEL", "LOG_LEVELS", "WORKER_OPTIONS", "WorkerOption", "run_worker"]

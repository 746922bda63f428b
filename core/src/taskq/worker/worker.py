"""The worker: picks its pool, starts its bootsteps, runs the consumer, shuts down cleanly.

``Worker.start`` blocks until :meth:`Worker.stop` (or a signal the CLI turns into it).
A warm stop lets the running task finish and gives every unstarted task back to the
broker; a cold stop (``cold=True``, the CLI's second signal) interrupts the running task,
whose message goes back too unless it was acknowledged early.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from taskq.drivers.bootstep import Step
from taskq.drivers.pool import Pool
from taskq.errors import ConfigError, DriverNotFoundError, PluginError
from taskq.plugins import import_string
from taskq.worker import endings
from taskq.worker.autoscale import AutoscaleStep, parse_autoscale
from taskq.worker.bootsteps import Blueprint
from taskq.worker.consumer import Consumer
from taskq.worker.events import EventStep
from taskq.worker.events import prepare as prepare_events
from taskq.worker.gossip import GossipStep
from taskq.worker.health import HealthStep
from taskq.worker.leases import LeaseStep
from taskq.worker.remote import ControlStep
from taskq.worker.revocations import RevocationStep

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.beat.service import Beat
    from taskq.plugins import Plugins

logger = logging.getLogger(__name__)


def select_pool(plugins: Plugins, name: str | None) -> tuple[str, type[Pool]]:
    """The pool named, or prefork if installed, or the only one installed."""
    pools = plugins.drivers("pools")
    if name is None:
        if "prefork" in pools:
            name = "prefork"
        elif len(pools) == 1:
            name = next(iter(pools))
        elif not pools:
            raise DriverNotFoundError(
                "no pool is installed; a worker needs one.\n"
                "Install one with: pip install taskq-solo (or taskq-prefork, taskq-thread, ...)"
            )
        else:
            raise ConfigError(
                f"several pools are installed ({', '.join(sorted(pools))}) and none is chosen; "
                f'choose one with --pool=NAME or worker_pool = "NAME" in taskq.toml'
            )
    cls = plugins.resolve_driver("pools", name)
    if not (isinstance(cls, type) and issubclass(cls, Pool)):
        raise PluginError(f"the pool {name!r} is not a taskq.drivers.pool.Pool subclass")
    return name, cls


def node_name(name: str, host: str | None = None) -> str:
    """``-n``'s name with Celery's escapes: ``%h`` the host name, ``%n`` its first part,
    ``%d`` the rest (the domain), ``%%`` a percent sign. ``w1@%h`` gives ``w1@web1.example.com``."""
    full = host if host is not None else socket.gethostname()
    short, _, domain = full.partition(".")
    out: list[str] = []
    i = 0
    while i < len(name):
        char = name[i]
        if char == "%" and i + 1 < len(name):
            escape = name[i + 1]
            replacement = {"h": full, "n": short, "d": domain, "%": "%"}.get(escape)
            if replacement is not None:
                out.append(replacement)
                i += 2
                continue
        out.append(char)
        i += 1
    return "".join(out)


class PoolStep(Step):
    """Starts and stops the worker's pool."""

    name = "pool"

    def start(self) -> None:
        self.worker.pool.start()

    def stop(self) -> None:
        self.worker.pool.stop(wait=not self.worker.cold)


class ConsumerStep(Step):
    """Creates the consumer (the worker runs its loop once every step has started)."""

    name = "consumer"
    requires = ("pool",)

    def start(self) -> None:
        consumer = self.worker.consumer = Consumer(self.worker)
        # A broker that refuses the credentials stops the worker before it says "ready";
        # one that does not answer yet is the loop's to wait for (it logs and retries).
        try:
            consumer.transport.connect()
        except ConfigError:
            raise
        except Exception as exc:  # any failure to reach the broker: the loop reports it
            logger.debug("the broker did not answer at start (%s); the consumer retries", exc)

    def stop(self) -> None:
        consumer = self.worker.consumer
        if consumer is not None:
            consumer.stop()
            consumer.close()


class BeatStep(Step):
    """Runs beat in a thread of this worker when it was started with ``-B``.

    The worker starts once beat is sending or standing by (waiting for another beat's
    lock); a beat that fails to start (a locked schedule file, a bad entry) stops the
    worker's start with its error.
    """

    name = "beat"
    requires = ("consumer",)

    def start(self) -> None:
        options = self.worker.beat_options
        if options is None:
            return
        from taskq.beat.service import Beat  # only for a worker that embeds beat

        beat = Beat(self.worker.app, embedded=True, **options)  # type: ignore[arg-type]
        self.beat: Beat | None = beat
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(beat,), name="taskq-beat", daemon=True)
        self.thread.start()
        while not (beat.ready.is_set() or beat.scheduler.standby.is_set()) and self.thread.is_alive():
            beat.ready.wait(0.05)
        if self.error is not None:
            raise self.error

    def _run(self, beat: Beat) -> None:
        try:
            beat.run()
        except BaseException as exc:
            self.error = exc
            if beat.ready.is_set() or beat.scheduler.standby.is_set():
                logger.exception("beat stopped on an error; the worker goes on without it")

    def stop(self) -> None:
        beat = getattr(self, "beat", None)
        if beat is not None:
            beat.stop()
            self.thread.join(BEAT_STOP_TIMEOUT)


#: Seconds a stopping worker waits for its embedded beat to finish its tick.
BEAT_STOP_TIMEOUT = 10.0

CORE_STEPS: tuple[type[Step], ...] = (
    PoolStep,
    ConsumerStep,
    LeaseStep,
    RevocationStep,
    AutoscaleStep,
    HealthStep,
    EventStep,
    ControlStep,
    GossipStep,
    BeatStep,
)


class Worker:
    """A worker process's main object. See the module docstring."""

    def __init__(
        self,
        app: App,
        *,
        queues: Sequence[str] | None = None,
        exclude_queues: Sequence[str] = (),
        concurrency: int | None = None,
        pool: str | None = None,
        hostname: str | None = None,
        prefetch_multiplier: int | None = None,
        lease_seconds: float | None = None,
        shutdown_grace: float | None = None,
        autoscale: str | tuple[int, int] | None = None,
        state_db: str | Path | None = None,
        health_file: str | Path | None = None,
        beat: bool = False,
        scheduler: str | None = None,
        schedule_filename: str | Path | None = None,
    ) -> None:
        self.app = app
        self.hostname = node_name(hostname) if hostname else f"taskq@{socket.gethostname()}"
        plugins = app.plugins
        if plugins.has_impl("taskq_before_worker_setup"):
            # First, while nothing is read from the settings: a plugin may still change them.
            options: dict[str, object] = {
                "queues": queues,
                "exclude_queues": exclude_queues,
                "concurrency": concurrency,
                "pool": pool,
                "hostname": hostname,
                "prefetch_multiplier": prefetch_multiplier,
                "lease_seconds": lease_seconds,
                "shutdown_grace": shutdown_grace,
                "autoscale": autoscale,
                "state_db": state_db,
                "health_file": health_file,
                "beat": beat,
                "scheduler": scheduler,
                "schedule_filename": schedule_filename,
            }
            plugins.before_worker_setup(self, options)
        conf = app.conf
        #: What it consumes: -Q, else task_queues, else task_default_queue; minus -X; plus
        #: its own <hostname>.dq2 with worker_direct (see taskq.routing).
        self.queues = app.routing.worker_queues(
            queues, exclude_queues, hostname=self.hostname, direct=bool(conf["worker_direct"])
        )
        # Pool processes find the app by reference (App.__reduce__): make it the current one.
        app.set_current()
        self.pool_name, pool_cls = select_pool(plugins, pool or cast("str | None", conf["worker_pool"]))
        #: ``(max, min)`` concurrency when autoscaling, else None.
        self.autoscale = parse_autoscale(autoscale) if isinstance(autoscale, str) else autoscale
        wanted = concurrency or cast("int | None", conf["worker_concurrency"])
        if self.autoscale is not None:
            wanted = self.autoscale[1]
        if wanted is None:
            wanted = 1 if pool_cls.capabilities.runs_inline else (os.cpu_count() or 1)
        self.pool: Pool = pool_cls(
            wanted,
            max_tasks_per_child=cast("int | None", conf["worker_max_tasks_per_child"]),
            max_memory_per_child=cast("int | None", conf["worker_max_memory_per_child"]),
        )
        self.pool.process_init = self._process_init
        self.pool.process_shutdown = self._process_shutdown
        self.pool.before_create_process = self._before_create_process
        self.pool.plugins = plugins
        self.concurrency = self.pool.concurrency
        multiplier = prefetch_multiplier
        if multiplier is None:
            multiplier = int(cast(int, conf["worker_prefetch_multiplier"]))
        self.prefetch_multiplier = multiplier
        self.prefetch_count = self.prefetch_for(self.concurrency)
        state = state_db or cast("str | None", conf["worker_state_db"])
        #: The state file that keeps revoked ids across restarts (``--statedb``).
        self.state_path = Path(state) if state else None
        health = health_file or cast("str | None", conf["worker_health_file"])
        #: A file touched every few seconds while the worker consumes (``--health-file``).
        self.health_path = Path(health) if health else None
        self.lease_seconds = float(lease_seconds or cast(float, conf["worker_lease_seconds"]))
        #: Seconds a warm shutdown waits for running tasks before giving them back.
        self.shutdown_grace = float(shutdown_grace or cast(float, conf["worker_shutdown_grace"]))
        #: How to build the embedded beat (``-B``), or None for a worker without one.
        self.beat_options: dict[str, object] | None = None
        if beat:
            self.beat_options = {"scheduler": scheduler, "schedule_filename": schedule_filename}
        self.consumer: Consumer | None = None
        #: When the worker was made (``time.monotonic()``), for ``inspect stats``' uptime.
        self.started_at = time.monotonic()
        self.cold = False
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self._stop_requested = False
        extra = [cast("type[Step]", import_string(path)) for path in plugins.bootsteps()]
        self.blueprint = Blueprint([*CORE_STEPS, *extra])
        self._warn_unsupported_limits()
        plugins.worker_init(self)

    def _warn_unsupported_limits(self) -> None:
        from taskq.worker.ratelimit import parse_rate

        for task in self.app.tasks.values():
            if task.rate_limit:
                try:
                    parse_rate(task.rate_limit)
                except ConfigError as exc:  # refused now, not when its first task comes
                    raise ConfigError(f"task {task.name}: {exc}") from None
        for problem in self.pool.unsupported():
            logger.warning("pool %s: %s", self.pool_name, problem)
        caps = self.pool.capabilities
        for task in self.app.tasks.values():
            if task.time_limit and not caps.hard_time_limit:
                logger.warning(
                    "task %s has a hard time limit (%ss) that the %s pool cannot enforce; "
                    "use a pool that can (prefork)",
                    task.name,
                    task.time_limit,
                    self.pool_name,
                )
            if task.soft_time_limit and not caps.soft_time_limit:
                logger.warning(
                    "task %s has a soft time limit (%ss) that the %s pool cannot enforce",
                    task.name,
                    task.soft_time_limit,
                    self.pool_name,
                )

    def prefetch_for(self, concurrency: int) -> int:
        """Messages held for a pool of ``concurrency``.

        A multiplier of 0 takes only what can run now, so a busy worker never hoards
        tasks an idle one could run.
        """
        if self.prefetch_multiplier == 0:
            return max(1, concurrency)
        return max(1, concurrency * self.prefetch_multiplier)

    @property
    def broker_url(self) -> str:
        return str(self.app.conf["broker_url"])

    def start(self) -> None:
        """Start every step and consume until stopped. Blocks."""
        self.app.import_task_modules()
        plugins = self.app.plugins
        if plugins.has_impl("taskq_after_worker_setup"):
            plugins.after_worker_setup(self)  # what it changes (the queues) is read by the steps below
        # Before the pool starts: its processes inherit what was read.
        endings.read_log_levels()
        prepare_events(self)
        try:
            self.blueprint.start(self)
            consumer = self.consumer
            assert consumer is not None, "the consumer step did not run"
            if self._stop_requested:
                consumer.stop()
            logger.info(
                "worker %s ready (pool=%s, concurrency=%d, queues=%s)",
                self.hostname,
                self.pool_name,
                self.concurrency,
                ",".join(self.queues),
            )
            self.ready.set()
            plugins.worker_ready(self)
            consumer.run()
        finally:
            plugins.worker_shutdown(self)
            self.blueprint.stop()
            self.app.close()
            self.stopped.set()
            logger.info("worker %s stopped", self.hostname)

    def _before_create_process(self) -> None:
        """In this process, before the pool starts one of its own: ``taskq_before_create_process``."""
        plugins = self.app.plugins
        if plugins.has_impl("taskq_before_create_process"):
            plugins.before_create_process(self)

    def _process_init(self) -> None:
        """In a process the pool started: ``taskq_worker_process_init``."""
        plugins = self.app.plugins
        if plugins.has_impl("taskq_worker_process_init"):
            plugins.worker_process_init(self)

    def _process_shutdown(self) -> None:
        """In a process the pool started, as it leaves: ``taskq_worker_process_shutdown``."""
        plugins = self.app.plugins
        if plugins.has_impl("taskq_worker_process_shutdown"):
            plugins.worker_process_shutdown(self, os.getpid())

    def stop(self, *, cold: bool = False) -> None:
        """Ask the worker to stop (warm: finish the running task first). Thread-safe."""
        news = not self._stop_requested or (cold and not self.cold)
        self._stop_requested = True
        self.cold = self.cold or cold
        if news and self.app.plugins.has_impl("taskq_worker_shutting_down"):
            self.app.plugins.worker_shutting_down(self, self.cold)
        if self.consumer is not None:
            self.consumer.stop()


__all__ = ["Worker", "select_pool"]

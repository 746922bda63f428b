"""The ``taskq`` command: Celery's subcommands and flags, plus those plugins add.

Errors a user can fix (:class:`TaskqError`) are printed without a traceback and end the
command with their named exit code; anything unexpected keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, cast

import click

from taskq import __version__
from taskq.errors import EXIT_CONFIG, TaskqError

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.config import Settings
    from taskq.plugins import Plugins

logger = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class CLIState:
    """What the top-level options chose; the app and plugins load only when needed."""

    def __init__(self, app_spec: str | None, config: str | None) -> None:
        self.app_spec = app_spec
        self.config = config
        if config:
            # App() in the user's module reads this, so -A apps see the same file.
            os.environ["TASKQ_CONFIG"] = config
        self._app: App | None = None
        self._settings: Settings | None = None
        self._plugins: Plugins | None = None

    @property
    def settings(self) -> Settings:
        """Settings from the config file and environment, before any app is imported."""
        if self._settings is None:
            from taskq.config import load_settings

            self._settings = load_settings(config_file=self.config)
        return self._settings

    @property
    def plugins(self) -> Plugins:
        """Plugins chosen by the config file (used before the app is imported)."""
        if self._plugins is None:
            if self._app is not None:
                self._plugins = self._app.plugins
            else:
                from taskq.plugins import load_plugins

                self._plugins = load_plugins(self.settings.plugin_enable, self.settings.plugin_disable)
        return self._plugins

    @property
    def app(self) -> App:
        if self._app is None:
            if self.app_spec:
                from taskq.cli.loader import find_app

                self._app = find_app(self.app_spec)
            else:
                from taskq.app import App

                self._app = App(config_file=self.config)
        return self._app


class TaskqGroup(click.Group):
    """The top-level group: built-in commands plus those contributed by plugins."""

    def _state(self, ctx: click.Context) -> CLIState:
        root = ctx.find_root()
        if not isinstance(root.obj, CLIState):
            params = root.params
            root.obj = CLIState(params.get("app"), params.get("config"))
        return root.obj

    def _plugin_commands(self, ctx: click.Context) -> dict[str, str]:
        try:
            drivers = self._state(ctx).plugins.drivers("commands")
        except TaskqError as exc:
            click.echo(f"taskq: plugin commands unavailable: {exc}", err=True)
            return {}
        return {name: cast(str, entry.target) for name, entry in drivers.items() if name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *self._plugin_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = self._plugin_commands(ctx).get(cmd_name)
        if target is None:
            return None
        from taskq.plugins import import_string

        try:
            command = import_string(target)
        except Exception as exc:
            raise click.ClickException(f"the plugin command {cmd_name!r} ({target}) failed to import: {exc}") from exc
        if not isinstance(command, click.Command):
            raise click.ClickException(f"the plugin command {cmd_name!r} ({target}) is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TaskqError as exc:
            click.echo(f"taskq: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=TaskqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", envvar="TASKQ_APP", metavar="MODULE[:ATTR]", help="Where the app is.")
@click.option("--config", envvar="TASKQ_CONFIG", type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.version_option(__version__, "--version", prog_name="taskq")
@click.pass_context
def cli(ctx: click.Context, app: str | None, config: str | None) -> None:
    """taskq: a distributed task queue."""
    ctx.obj = CLIState(app, config)


def _state(ctx: click.Context) -> CLIState:
    return cast(CLIState, ctx.find_root().obj)


def _set_app(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        _state(ctx).app_spec = value
    return value


#: ``-A`` accepted after the subcommand too (``taskq worker -A proj``).
app_option = click.option(
    "-A",
    "--app",
    "app_spec",
    metavar="MODULE[:ATTR]",
    expose_value=False,
    is_eager=True,
    callback=_set_app,
    help="Where the app is.",
)


# ---- worker ------------------------------------------------------------------------


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _banner(app: App, worker: object) -> str:
    from taskq.worker.worker import Worker

    assert isinstance(worker, Worker)
    from taskq.plugins import PluginInfo

    def mask(url: str | None) -> str:
        if not url:
            return "disabled"
        from taskq.utils import mask_url

        return mask_url(url)

    infos: list[PluginInfo] = [i for i in app.plugins.describe() if i.enabled]
    plugin_names = ", ".join(f"{i.name}" for i in infos)
    lines = [
        f"taskq {__version__} worker {worker.hostname}",
        f"  app:         {app.main or '__main__'} ({len(app.tasks)} tasks)",
        f"  broker:      {mask(str(app.conf['broker_url']))}",
        f"  results:     {mask(app.backend_url)}",
        f"  pool:        {worker.pool_name} (concurrency {worker.concurrency}, prefetch {worker.prefetch_count})",
        f"  queues:      {', '.join(worker.queues)}",
        f"  plugins:     {plugin_names}",
        "  tasks:",
        *[f"    . {name}" for name in sorted(app.tasks)],
    ]
    return "\n".join(lines)


@cli.command()
@click.option("-Q", "--queues", help="Comma-separated queues to consume (default: task_default_queue).")
@click.option("-c", "--concurrency", type=int, help="Tasks run at once (default: CPUs; 1 for solo).")
@click.option("-P", "--pool", help="Pool name, e.g. solo, prefork, thread, gevent.")
@click.option(
    "-l", "--loglevel", default="INFO", show_default=True, type=click.Choice(LOG_LEVELS, case_sensitive=False)
)
@click.option("-n", "--hostname", help="Worker name (default taskq@HOST).")
@click.option("--prefetch-multiplier", type=int, help="Messages held per concurrency slot; 0: only what runs.")
@click.option("--autoscale", metavar="MAX,MIN", help="Grow the pool up to MAX under load, shrink to MIN when idle.")
@click.option("-S", "--statedb", type=click.Path(dir_okay=False), help="File that keeps revoked ids across restarts.")
@click.option(
    "--health-file", type=click.Path(dir_okay=False), help="Touched every 2 s while consuming (see `taskq health`)."
)
@click.option("--time-limit", type=float, help="Hard time limit for every task, in seconds.")
@click.option("--soft-time-limit", type=float, help="Soft time limit for every task, in seconds.")
@click.option("--max-tasks-per-child", type=int, help="Replace a pool process after this many tasks.")
@click.option("--max-memory-per-child", type=int, help="Replace a pool process above this resident memory (KiB).")
@click.option("--config", "worker_config", type=click.Path(dir_okay=False), help="Config file (TOML).")
@app_option
@click.pass_context
def worker(
    ctx: click.Context,
    queues: str | None,
    concurrency: int | None,
    pool: str | None,
    loglevel: str,
    hostname: str | None,
    prefetch_multiplier: int | None,
    autoscale: str | None,
    statedb: str | None,
    health_file: str | None,
    time_limit: float | None,
    soft_time_limit: float | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    worker_config: str | None,
) -> None:
    """Start a worker: consume tasks and run them until SIGTERM or Ctrl-C.

    SIGTERM or Ctrl-C: warm shutdown (running tasks finish, the rest go back to the
    broker); a second one, or SIGQUIT: cold shutdown; SIGHUP: warm shutdown, then the
    worker starts again with the same arguments.
    """
    state = _state(ctx)
    if worker_config:
        state.config = worker_config
        os.environ["TASKQ_CONFIG"] = worker_config
    chosen_pool = pool or cast("str | None", state.settings["worker_pool"])
    # Before the app is imported: green pools monkey-patch here.
    state.plugins.early_init(chosen_pool, sys.argv[1:])
    app = state.app
    if app.conf["worker_hijack_root_logger"]:
        _setup_logging(loglevel.upper(), str(app.conf["worker_log_format"]))
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    overrides = {
        "task_time_limit": time_limit,
        "task_soft_time_limit": soft_time_limit,
        "worker_max_tasks_per_child": max_tasks_per_child,
        "worker_max_memory_per_child": max_memory_per_child,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        app.conf.update(**overrides)
        for task in app.tasks.values():
            task.resolve_defaults()
    w = app.Worker(
        queues=queue_list,
        concurrency=concurrency,
        pool=pool,
        hostname=hostname,
        prefetch_multiplier=prefetch_multiplier,
        autoscale=autoscale,
        state_db=statedb,
        health_file=health_file,
    )
    if logging.getLogger().isEnabledFor(logging.INFO):
        click.echo(_banner(app, w), err=True)
    restart = _install_signal_handlers(w)
    w.start()
    if restart.is_set():
        logger.warning("restarting: %s", " ".join(sys.argv))
        os.execv(sys.executable, [sys.executable, "-m", "taskq", *sys.argv[1:]])  # noqa: S606 - our own argv


def _install_signal_handlers(worker: object) -> threading.Event:
    """Warm stop on the first SIGTERM/SIGINT, cold on the second; SIGHUP restarts.

    Returns an event that is set when the worker should start again after stopping.
    """
    from taskq.worker.worker import Worker

    assert isinstance(worker, Worker)
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


# ---- client commands ---------------------------------------------------------------


def _parse_json(text: str | None, what: str, kind: type) -> object:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{what} must be JSON: {exc}") from exc
    if not isinstance(value, kind):
        raise click.BadParameter(f"{what} must be a JSON {'list' if kind is list else 'object'}")
    return value


@cli.command()
@click.argument("name")
@click.option("-a", "--args", "args_json", help="Positional arguments as a JSON list.")
@click.option("-k", "--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--countdown", type=float, help="Run no sooner than this many seconds from now.")
@click.option("--eta", help="Run no sooner than this ISO-8601 time.")
@click.option("--expires", type=float, help="Skip the task if not started within this many seconds.")
@click.option("-Q", "--queue", help="Queue to send to (default: the task's route).")
@click.option("--serializer", help="Serializer for this message.")
@app_option
@click.pass_context
def call(
    ctx: click.Context,
    name: str,
    args_json: str | None,
    kwargs_json: str | None,
    countdown: float | None,
    eta: str | None,
    expires: float | None,
    queue: str | None,
    serializer: str | None,
) -> None:
    """Send the task NAME and print its id."""
    args = cast(list[object], _parse_json(args_json, "--args", list))
    kwargs = cast(dict[str, object], _parse_json(kwargs_json, "--kwargs", dict))
    result = _state(ctx).app.send_task(
        name, args, kwargs, countdown=countdown, eta=eta, expires=expires, queue=queue, serializer=serializer
    )
    click.echo(result.id)


@cli.command()
@click.argument("task_id")
@click.option("--timeout", type=float, default=None, help="Wait this long for the result (default: forever).")
@click.option("--traceback", "show_traceback", is_flag=True, help="Show the traceback of a failed task.")
@app_option
@click.pass_context
def result(ctx: click.Context, task_id: str, timeout: float | None, show_traceback: bool) -> None:
    """Wait for a task's result and print it (exit 1 if the task failed)."""
    from taskq import states

    res = _state(ctx).app.AsyncResult(task_id)
    value = res.get(timeout=timeout, propagate=False)
    if res.state == states.SUCCESS:
        click.echo(json.dumps(value, default=repr))
        return
    click.echo(f"{res.state}: {value!r}", err=True)
    if show_traceback and res.traceback:
        click.echo(res.traceback, err=True)
    ctx.exit(1)


@cli.command()
@click.option("-Q", "--queues", help="Comma-separated queues (default: task_default_queue).")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@app_option
@click.pass_context
def purge(ctx: click.Context, queues: str | None, force: bool) -> None:
    """Delete every waiting message from the queues."""
    app = _state(ctx).app
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else [str(app.conf["task_default_queue"])]
    if not force:
        click.confirm(f"Delete every waiting message in {', '.join(names)}?", abort=True)
    transport = app.transport
    total = 0
    for name in names:
        count = transport.purge(name)
        total += count
        click.echo(f"{name}: {count} message(s) deleted")
    if len(names) > 1:
        click.echo(f"total: {total}")


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--terminate", is_flag=True, help="Also stop the tasks if they are running.")
@app_option
@click.pass_context
def revoke(ctx: click.Context, task_ids: tuple[str, ...], terminate: bool) -> None:
    """Make workers skip the tasks TASK_IDS (kept in the result backend)."""
    _state(ctx).app.control.revoke(list(task_ids), terminate=terminate)
    click.echo(f"revoked {len(task_ids)} task(s){' (terminate)' if terminate else ''}")


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--max-age", type=float, default=30.0, show_default=True, help="Seconds before the file counts as stale.")
def health(path: str, max_age: float) -> None:
    """Exit 0 if the worker that touches PATH (--health-file) consumed recently, else 1.

    For supervisors and container health checks: a worker whose broker is gone, or
    whose consumer is stuck, stops touching the file.
    """
    import time

    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        click.echo(f"unhealthy: {path} does not exist (is the worker running with --health-file {path}?)", err=True)
        sys.exit(1)
    if age > max_age:
        click.echo(f"unhealthy: {path} was last touched {age:.0f}s ago (more than {max_age:.0f}s)", err=True)
        sys.exit(1)
    click.echo(f"healthy: consumed {age:.1f}s ago")


@cli.group()
def inspect() -> None:
    """Look at the running workers (through their heartbeats in the result backend)."""


def _workers(ctx: click.Context) -> dict[str, dict[str, object]]:
    backend = _state(ctx).app.backend
    try:
        return backend.workers()
    except NotImplementedError as exc:
        raise click.ClickException(f"{exc}; `taskq inspect` needs a key-value result backend (sqlite, redis)") from exc


@inspect.command()
@app_option
@click.pass_context
def ping(ctx: click.Context) -> None:
    """Say which workers are consuming now (exit 1 if none is)."""
    import time

    workers = _workers(ctx)
    if not workers:
        click.echo("no worker is consuming (none has written a heartbeat in the last 10 s)", err=True)
        ctx.exit(1)
    for name, info in sorted(workers.items()):
        age = time.time() - float(cast(float, info.get("timestamp", 0.0)))
        click.echo(f"{name}: pong ({age:.1f}s ago, pool {info.get('pool')}, {info.get('processed')} processed)")


@inspect.command()
@app_option
@click.pass_context
def stats(ctx: click.Context) -> None:
    """Each consuming worker's pool, queues, counters and running tasks, as JSON."""
    click.echo(json.dumps(_workers(ctx), indent=2, sort_keys=True, default=str))


@cli.command("plugins")
@click.option(
    "--capabilities",
    is_flag=True,
    help="Also show what each transport, result backend and pool can do (imports the drivers).",
)
@click.pass_context
def plugins_command(ctx: click.Context, capabilities: bool) -> None:
    """List plugins: distribution, version, drivers, and load errors."""
    state = _state(ctx)
    plugins = state.plugins
    infos = plugins.describe()
    for info in infos:
        status = "enabled" if info.enabled else ("FAILED" if info.error else "disabled")
        origin = "built-in" if info.is_builtin else "plugin"
        click.echo(f"{info.name}  [{status}, {origin}]  {info.distribution} {info.version}  ({info.module})")
        for kind, names in sorted(info.drivers.items()):
            click.echo(f"    {kind}: {', '.join(sorted(names))}")
            if capabilities and kind in ("transports", "result_backends", "pools"):
                for name in sorted(names):
                    click.echo(f"        {name}: {_capabilities(plugins, kind, name)}")
        if info.error:
            click.echo(f"    error: {info.error}")
    if state.settings.source:
        click.echo(f"(selection from {state.settings.source})")


def _capabilities(plugins: Plugins, kind: str, name: str) -> str:
    """``can: a, b; cannot: c`` for one driver, from its class's ``capabilities``."""
    import dataclasses

    try:
        driver = plugins.resolve_driver(kind, name)
    except TaskqError as exc:
        return f"cannot be loaded: {exc}"
    caps = getattr(driver, "capabilities", None)
    if caps is None or isinstance(caps, type) or not dataclasses.is_dataclass(caps):
        return "(states no capabilities)"
    flags = {field.name: getattr(caps, field.name) for field in dataclasses.fields(caps)}
    can = [key.replace("_", " ") for key, value in flags.items() if value]
    cannot = [key.replace("_", " ") for key, value in flags.items() if not value]
    return f"can: {', '.join(can) or 'nothing extra'}; cannot: {', '.join(cannot) or '-'}"


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``taskq`` command."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="taskq")
    except TaskqError as exc:  # raised outside a command (e.g. while listing plugin commands)
        click.echo(f"taskq: error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", EXIT_CONFIG))


__all__ = ["cli", "main"]

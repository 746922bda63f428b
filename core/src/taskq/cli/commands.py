"""The ``taskq`` command as a click group: Celery's subcommands and flags, plus those plugins add.

Errors a user can fix (:class:`TaskqError`) are printed without a traceback and end the
command with their named exit code; anything unexpected keeps its traceback. The usual
``taskq worker`` invocations start without this module (see :mod:`taskq.cli.main`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from taskq import __version__
from taskq.cli.state import CLIState
from taskq.cli.worker import LOG_LEVELS, WORKER_OPTIONS, WorkerOption, run_worker, setup_logging
from taskq.errors import TaskqError

if TYPE_CHECKING:
    from taskq.plugins import Plugins

F = TypeVar("F", bound=Callable[..., object])
logger = logging.getLogger(__name__)


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


def _click_option(option: WorkerOption) -> Callable[[F], F]:
    """The click option for one entry of :data:`WORKER_OPTIONS`."""
    settings: dict[str, Any] = {"help": option.help, "metavar": option.metavar}
    if option.is_flag:
        return click.option(*option.flags, option.name, is_flag=True, help=option.help)
    if option.choices:
        settings["type"] = click.Choice(option.choices, case_sensitive=False)
    elif option.is_file_path:
        settings["type"] = click.Path(dir_okay=False)
    elif option.value_type is not str:
        settings["type"] = option.value_type
    if option.default is not None:
        settings.update(default=option.default, show_default=True)
    return click.option(*option.flags, option.name, **settings)


def _worker_options(command: F) -> F:
    for option in reversed(WORKER_OPTIONS):
        command = _click_option(option)(command)
    return command


@cli.command()
@_worker_options
@app_option
@click.pass_context
def worker(ctx: click.Context, /, **options: Any) -> None:
    """Start a worker: consume tasks and run them until SIGTERM or Ctrl-C.

    SIGTERM or Ctrl-C: warm shutdown (running tasks finish, the rest go back to the
    broker); a second one, or SIGQUIT: cold shutdown; SIGHUP: warm shutdown, then the
    worker starts again with the same arguments.
    """
    run_worker(_state(ctx), **options)


@cli.command()
@click.option("-S", "--scheduler", help="Scheduler name (default: beat_scheduler; see `taskq plugins`).")
@click.option(
    "-s",
    "--schedule",
    type=click.Path(dir_okay=False),
    help="File where the file scheduler keeps when each entry last ran (default: beat_schedule_filename).",
)
@click.option("--max-interval", type=float, help="Longest sleep between checks, in seconds (default: 300).")
@click.option(
    "-l", "--loglevel", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="INFO", show_default=True
)
@app_option
@click.pass_context
def beat(
    ctx: click.Context, scheduler: str | None, schedule: str | None, max_interval: float | None, loglevel: str
) -> None:
    """Send the periodic tasks of beat_schedule when they are due, until SIGTERM or Ctrl-C.

    Run one beat per schedule: two would send every task twice (the file scheduler
    refuses a second beat on the same file). `taskq worker -B` runs beat inside a worker.
    """
    import signal

    from taskq.beat.service import Beat

    app = _state(ctx).app
    if app.conf["worker_hijack_root_logger"]:
        setup_logging(loglevel.upper(), str(app.conf["worker_log_format"]))
    service = Beat(app, scheduler=scheduler, schedule_filename=schedule, max_interval=max_interval)

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("%s: beat stops", signal.Signals(signum).name)
        service.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    service.run()


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
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event, as it came.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many events.")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds.")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="PREFIX",
    help="Only events whose type starts so (task-, worker-heartbeat).",
)
@click.option(
    "-c", "--camera", metavar="MODULE.CLASS", help="Run this Polaroid subclass on the cluster's state instead."
)
@click.option(
    "-F",
    "--frequency",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="With --camera: seconds between two snapshots.",
)
@app_option
@click.pass_context
def events(
    ctx: click.Context,
    as_json: bool,
    count: int | None,
    timeout: float | None,
    types: tuple[str, ...],
    camera: str | None,
    frequency: float,
) -> None:
    """Print the cluster's events as they come (workers with -E send task events), until Ctrl-C;
    with --camera, take snapshots of the cluster's state instead."""
    from taskq.events import EventReceiver

    if camera:
        from taskq.events.snapshot import Polaroid, run_camera
        from taskq.plugins import import_string

        try:
            found = import_string(camera)
        except Exception as exc:
            raise click.BadParameter(f"cannot import {camera!r}: {exc}", param_hint="--camera") from None
        if not (isinstance(found, type) and issubclass(found, Polaroid)):
            raise click.BadParameter(
                f"{camera!r} is no subclass of taskq.events.snapshot.Polaroid", param_hint="--camera"
            )
        shots = run_camera(_state(ctx).app, found, frequency, timeout=timeout)
        click.echo(f"{shots.shots} snapshot(s) taken", err=True)
        return

    def show(event: dict[str, object]) -> None:
        kind = str(event.get("type"))
        if types and not kind.startswith(types):
            return
        if as_json:
            click.echo(json.dumps(event, default=repr, sort_keys=True))
            return
        when = time.strftime("%H:%M:%S", time.localtime(float(cast(float, event.get("timestamp") or 0.0))))
        skip = {"type", "timestamp", "hostname", "clock", "pid", "utcoffset", "uuid"}
        rest = ", ".join(f"{k}={event[k]!r}" for k in sorted(event) if k not in skip)
        uuid = f" {event['uuid']}" if "uuid" in event else ""
        click.echo(f"{when} {event.get('hostname')} {kind}{uuid}: {rest}")

    receiver = EventReceiver(_state(ctx).app, {"*": show})
    try:
        receiver.capture(limit=count, timeout=timeout)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.close()


@cli.command()
@app_option
@click.pass_context
def top(ctx: click.Context) -> None:
    """A live view of the cluster from its events: workers, rates, tasks; revoke from there (q quits)."""
    from taskq.cli.top import run

    run(_state(ctx).app)


@cli.command()
@click.argument("result_id")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "dot"]),
    default="text",
    show_default=True,
    help="A tree of lines, the tree as JSON, or a Graphviz digraph (taskq graph ID --format dot | dot -Tsvg).",
)
@click.option("--no-children", is_flag=True, help="Leave out the tasks each task sent while it ran.")
@app_option
@click.pass_context
def graph(ctx: click.Context, result_id: str, output: str, no_children: bool) -> None:
    """Show the workflow (chain, group, chord) whose result is RESULT_ID, each task with its state.

    RESULT_ID is the id apply_async() returned (a chain's, a group's, a chord's) or any task's.
    """
    from taskq.graph import render_dot, render_text, workflow_tree

    tree = workflow_tree(result_id, _state(ctx).app, children=not no_children)
    if output == "json":
        click.echo(json.dumps(tree, indent=2, default=repr))
    elif output == "dot":
        click.echo(render_dot(tree))
    else:
        click.echo(render_text(tree))


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
@click.argument("task_ids", nargs=-1)
@click.option("--terminate", is_flag=True, help="Also stop the tasks if they are running.")
@click.option(
    "--stamp",
    "stamps",
    multiple=True,
    metavar="NAME=VALUE",
    help="Revoke every task stamped NAME=VALUE (repeatable; a VALUE that is JSON is read as JSON).",
)
@app_option
@click.pass_context
def revoke(ctx: click.Context, task_ids: tuple[str, ...], terminate: bool, stamps: tuple[str, ...]) -> None:
    """Make workers skip the tasks TASK_IDS, or those stamped --stamp NAME=VALUE (kept in the result backend)."""
    if not task_ids and not stamps:
        raise click.UsageError("give the ids of the tasks to revoke, or --stamp NAME=VALUE")
    control = _state(ctx).app.control
    suffix = " (terminate)" if terminate else ""
    if task_ids:
        control.revoke(list(task_ids), terminate=terminate)
        click.echo(f"revoked {len(task_ids)} task(s){suffix}")
    if stamps:
        wanted: dict[str, list[object]] = {}
        for item in stamps:
            name, equals, text = item.partition("=")
            if not equals or not name:
                raise click.BadParameter(f"{item!r}: write NAME=VALUE", param_hint="--stamp")
            values = wanted.setdefault(name, [])
            values.append(text)
            try:  # a stamp 42 and a stamp "42" read alike on the command line: revoke both
                value = json.loads(text)
            except ValueError:
                continue
            if value != text:
                values.append(value)
        control.revoke_by_stamped_headers(wanted, terminate=terminate)
        click.echo(f"revoked the tasks stamped {', '.join(stamps)}{suffix}")


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


from taskq.cli.remote import control, inspect, status_command  # noqa: E402 - they use app_option and _state

cli.add_command(inspect)
cli.add_command(control)
cli.add_command(status_command())

__all__ = ["TaskqGroup", "cli"]

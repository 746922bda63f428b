"""``taskq inspect``, ``taskq control`` and ``taskq status``: remote control from the command line.

Each subcommand of ``inspect`` and ``control`` is a remote control command
(:mod:`taskq.worker.commands`, plus those plugins add), sent through the broker's mailbox
to every worker or to ``--destination``; the replies that come within ``--timeout`` are
printed per worker, or as one JSON object with ``--json``. Celery workers on the same
broker answer too.

On a broker without a mailbox (SQS), ``inspect ping|active|registered|stats`` and
``status`` fall back to the heartbeats workers keep in the result backend.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, cast

import click

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.worker.commands import Command

#: Seconds to wait for replies when --timeout is not given.
DEFAULT_TIMEOUT = 1.0
# Commands that heartbeats can answer when the broker has no mailbox.
HEARTBEAT_COMMANDS = ("ping", "active", "registered", "stats")


def _app(ctx: click.Context) -> App:
    from taskq.cli.commands import _state

    return _state(ctx).app


def _commands(ctx: click.Context, kind: str) -> dict[str, Command]:
    """The commands of ``kind`` by name (aliases left out), built-in and plugins'."""
    from taskq.cli.commands import _state
    from taskq.errors import TaskqError
    from taskq.worker.commands import registry

    try:
        extra = _state(ctx).plugins.control_commands()
    except TaskqError as exc:
        click.echo(f"taskq: plugin control commands unavailable: {exc}", err=True)
        extra = {}
    return {name: cmd for name, cmd in registry(extra).items() if cmd.kind == kind and name == cmd.name}


def _parse(cmd: Command, values: tuple[str, ...]) -> dict[str, object]:
    """The request's arguments from the words after the command's name."""
    arguments: dict[str, object] = {}
    words = list(values)
    for name, kind in cmd.args:
        if not words:
            break
        word = words.pop(0)
        try:
            arguments[name] = kind(word)
        except (TypeError, ValueError):
            raise click.BadParameter(f"{word!r} is not a valid {name}", param_hint=name) from None
    if cmd.variadic is not None:
        if words:
            arguments[cmd.variadic] = words
    elif words:
        expected = " ".join(f"[{name}]" for name, _ in cmd.args) or "no arguments"
        raise click.UsageError(f"{cmd.name} takes {expected}; got also {' '.join(words)!r}")
    return arguments


def _usage(cmd: Command) -> str:
    names = [f"[{name.upper()}]" for name, _ in cmd.args]
    if cmd.variadic:
        names.append(f"[{cmd.variadic.upper()}]...")
    return " ".join(names)


class RemoteGroup(click.Group):
    """A group whose subcommands are the remote control commands of one kind."""

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_commands(ctx, self.kind))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = _commands(ctx, self.kind).get(cmd_name)
        if cmd is None:
            from taskq.worker.commands import registry

            alias = registry().get(cmd_name)  # Celery's old names (dump_active...) still work
            if alias is None or alias.kind != self.kind:
                return None
            cmd = alias
        return _click_command(cmd, self.kind)


def _click_command(cmd: Command, kind: str) -> click.Command:
    from taskq.cli.commands import app_option

    @click.command(name=cmd.name, help=cmd.help, short_help=cmd.help)
    @click.argument("values", nargs=-1, metavar=_usage(cmd))
    @click.option(
        "-d",
        "--destination",
        help="Comma-separated names of the workers to ask (default: every worker).",
    )
    @click.option(
        "-t",
        "--timeout",
        type=float,
        default=None,
        help=f"Seconds to wait for replies (default: {cmd.default_timeout:g}).",
    )
    @click.option("-j", "--json", "as_json", is_flag=True, help="Print the replies as one JSON object.")
    @app_option
    @click.pass_context
    def run(
        ctx: click.Context, values: tuple[str, ...], destination: str | None, timeout: float | None, as_json: bool
    ) -> None:
        arguments = _parse(cmd, values)
        names = [name.strip() for name in destination.split(",") if name.strip()] if destination else None
        wait = cmd.default_timeout if timeout is None else timeout
        app = _app(ctx)
        try:
            replies = app.control.broadcast(cmd.name, arguments, names, reply=True, timeout=wait)
        except NotImplementedError as exc:
            if kind == "inspect" and cmd.name in HEARTBEAT_COMMANDS:
                _from_heartbeats(ctx, app, cmd.name, names, as_json, reason=str(exc))
                return
            raise click.ClickException(f"{exc}") from None
        merged: dict[str, object] = {}
        for answer in replies or []:
            merged.update(answer)
        _show(ctx, merged, as_json, wait)

    return run


def _show(ctx: click.Context, replies: dict[str, object], as_json: bool, timeout: float) -> None:
    if as_json:
        click.echo(json.dumps(replies, indent=2, sort_keys=True, default=str))
    else:
        for node in sorted(replies):
            _show_one(node, replies[node])
    if not replies:
        click.echo(f"Error: no worker replied within {timeout:g}s", err=True)
        ctx.exit(1)
    if not as_json:
        count = len(replies)
        click.echo(f"{count} node{'' if count == 1 else 's'} online.")
    if any(isinstance(reply, dict) and "error" in reply for reply in replies.values()):
        ctx.exit(2)


def _show_one(node: str, reply: object) -> None:
    if isinstance(reply, dict) and set(reply) <= {"ok", "error"} and reply:
        status = "ERROR" if "error" in reply else "OK"
        click.echo(f"->  {node}: {status}")
        click.echo(f"        {reply.get('error', reply.get('ok'))}")
        return
    click.echo(f"->  {node}: OK")
    if isinstance(reply, list):
        if not reply:
            click.echo("    - empty -")
        for item in reply:
            click.echo(f"    * {_line(item)}")
        return
    text = json.dumps(reply, indent=2, sort_keys=True, default=str)
    for line in text.splitlines():
        click.echo(f"    {line}")


def _line(item: object) -> str:
    """One item of a list reply on one line: a task as id, name, arguments; else JSON."""
    if isinstance(item, dict) and "request" in item and isinstance(item["request"], dict):
        return f"eta {item.get('eta')}  {_line(item['request'])}"
    if isinstance(item, dict) and "id" in item and "name" in item:
        started = item.get("time_start")
        since = f"  (running {time.time() - started:.1f}s)" if isinstance(started, (int, float)) else ""
        return f"{item['id']}  {item['name']}  args={item.get('args')!r:.80} kwargs={item.get('kwargs')!r:.80}{since}"
    if isinstance(item, dict) and "name" in item and "routing_key" in item:
        return str(item["name"])
    return item if isinstance(item, str) else json.dumps(item, sort_keys=True, default=str)


def _from_heartbeats(
    ctx: click.Context, app: App, name: str, names: list[str] | None, as_json: bool, *, reason: str
) -> None:
    """``inspect ping|active|registered|stats`` from the workers' heartbeats in the result backend."""
    try:
        workers = app.backend.workers()
    except NotImplementedError as exc:
        raise click.ClickException(
            f"{reason}; and {exc}: `taskq inspect` needs a broker with a mailbox (redis, amqp, sqlite, "
            f"filesystem) or a result backend that keeps worker heartbeats"
        ) from None
    if names:
        workers = {node: info for node, info in workers.items() if node in names}
    click.echo(f"(the broker has no mailbox: answering from the workers' heartbeats; {reason})", err=True)
    replies: dict[str, object] = {}
    for node, info in workers.items():
        if name == "ping":
            age = time.time() - float(cast(float, info.get("timestamp", 0.0)))
            replies[node] = {"ok": f"pong (heartbeat {age:.1f}s ago)"}
        elif name == "active":
            replies[node] = info.get("active") or []
        elif name == "registered":
            replies[node] = info.get("registered") or []
        else:
            replies[node] = info
    _show(ctx, replies, as_json, 0)


@click.group(cls=RemoteGroup, kind="inspect")
def inspect() -> None:
    """Ask the workers what they hold and do (through the broker's mailbox; Celery workers answer too)."""


@click.group(cls=RemoteGroup, kind="control")
def control() -> None:
    """Change running workers: revoke, rate limits, pool size, queues, events, shutdown."""


def status_command() -> click.Command:
    from taskq.cli.commands import app_option

    @click.command("status")
    @click.option("-t", "--timeout", type=float, default=DEFAULT_TIMEOUT, help="Seconds to wait for replies.")
    @click.option("-j", "--json", "as_json", is_flag=True, help="Print the replies as one JSON object.")
    @app_option
    @click.pass_context
    def status(ctx: click.Context, timeout: float, as_json: bool) -> None:
        """Say which workers are up, as ``celery status`` does (exit 1 when none is)."""
        app = _app(ctx)
        try:
            replies = app.control.ping(timeout=timeout)
        except NotImplementedError as exc:
            _from_heartbeats(ctx, app, "ping", None, as_json, reason=str(exc))
            return
        merged: dict[str, object] = {}
        for answer in replies:
            merged.update(answer)
        if as_json:
            click.echo(json.dumps(merged, indent=2, sort_keys=True))
        else:
            for node in sorted(merged):
                click.echo(f"->  {node}: OK")
            count = len(merged)
            click.echo(f"\n{count} node{'' if count == 1 else 's'} online.")
        if not merged:
            ctx.exit(1)

    return status


__all__ = ["RemoteGroup", "control", "inspect", "status_command"]

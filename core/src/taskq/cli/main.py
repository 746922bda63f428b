"""The ``taskq`` command's entry point: a worker starts without click, the rest goes through it.

Importing click costs a worker 20 ms of its start-up with bytecode caches, 50 ms or
more without (#5). So :func:`main` first reads the arguments as ``taskq [-A APP]
[--config FILE] worker [OPTIONS]`` with the option table of :mod:`taskq.cli.worker`;
only when it meets anything it is not sure of (``--help``, an unknown option, a value
click would refuse, another command) does it hand the whole command line to the click
group in :mod:`taskq.cli.commands`, so every message and error stays click's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskq.cli.worker import WORKER_OPTIONS
from taskq.errors import EXIT_CONFIG, EXIT_FAILURE, TaskqError

if TYPE_CHECKING:
    from taskq.cli.commands import cli

#: The top-level options read without click (each of them names a parameter of ``cli``).
GROUP_FLAGS = {"-A": "app", "--app": "app", "--config": "config"}
#: ``-A`` after the subcommand (``taskq worker -A proj``), as the click command accepts it.
APP_FLAGS = {"-A": "app_spec", "--app": "app_spec"}


@dataclass
class WorkerCommand:
    """A ``taskq worker`` command line, read without click."""

    app_spec: str | None
    config: str | None
    #: Keyword arguments of :func:`taskq.cli.worker.run_worker`.
    options: dict[str, object] = field(default_factory=dict)


def parse_worker_command(args: Sequence[str], environ: Mapping[str, str]) -> WorkerCommand | None:
    """``args`` read as a worker command, or None when click must read them."""
    group = _read_options(args, GROUP_FLAGS)
    if group is None:
        return None
    group_values, position = group
    if position == len(args) or args[position] != "worker":
        return None
    flags = {flag: option.name for option in WORKER_OPTIONS for flag in option.flags} | APP_FLAGS
    switches = frozenset(flag for option in WORKER_OPTIONS if option.is_flag for flag in option.flags)
    command = _read_options(args[position + 1 :], flags, switches)
    if command is None or command[1] != len(args) - position - 1:
        return None  # a positional argument or ``--``: click says what is wrong
    values = command[0]
    # Empty environment variables count as unset, as in click.
    app_spec = values.get("app_spec") or group_values.get("app", environ.get("TASKQ_APP") or None)
    config = group_values.get("config", environ.get("TASKQ_CONFIG") or None)
    if config is not None and os.path.isdir(config):
        return None
    options: dict[str, object] = {}
    for option in WORKER_OPTIONS:
        raw = values.get(option.name, option.default)
        try:
            options[option.name] = None if raw is None else option.convert(raw)
        except ValueError:
            return None
    return WorkerCommand(app_spec, config, options)


def _read_options(
    args: Sequence[str], flags: Mapping[str, str], switches: frozenset[str] = frozenset()
) -> tuple[dict[str, str], int] | None:
    """The options before the first argument that is not one: ``(values by name, that index)``.

    None for a flag not in ``flags`` (``--help`` among them), a flag without its value, or
    ``--``. A flag in ``switches`` takes no value and reads as ``"true"`` (``-Bc2``, which
    bundles flags, is left to click).
    """
    values: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return None
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            flag, equals, value = arg.partition("=")
            attached = bool(equals)  # --pool=solo
        else:
            flag, value = arg[:2], arg[2:]
            attached = bool(value)  # -c1
        name = flags.get(flag)
        if name is None:
            return None
        if flag in switches:
            if attached:
                return None
            values[name] = "true"
            index += 1
            continue
        if not attached:
            index += 1
            if index == len(args):
                return None
            value = args[index]
        values[name] = value
        index += 1
    return values, index


def _run_worker(command: WorkerCommand) -> None:
    from taskq.cli.state import CLIState
    from taskq.cli.worker import run_worker

    try:
        state = CLIState(command.app_spec, command.config)
        run_worker(state, **command.options)  # type: ignore[arg-type]  # converted by WORKER_OPTIONS
    except TaskqError as exc:
        sys.stderr.write(f"taskq: error: {exc}\n")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, EOFError):
        sys.stderr.write("\nAborted!\n")  # as click says it
        sys.exit(EXIT_FAILURE)
    sys.exit(0)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``taskq`` command."""
    args = list(argv) if argv is not None else sys.argv[1:]
    command = parse_worker_command(args, os.environ)
    if command is not None:
        _run_worker(command)
    from taskq.cli.commands import cli

    try:
        cli.main(args=args, prog_name="taskq")
    except TaskqError as exc:  # raised outside a command (e.g. while listing plugin commands)
        sys.stderr.write(f"taskq: error: {exc}\n")
        sys.exit(getattr(exc, "exit_code", EXIT_CONFIG))


def __getattr__(name: str) -> Any:
    # ``from taskq.cli.main import cli`` imports click only then.
    if name == "cli":
        from taskq.cli.commands import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["cli", "main", "parse_worker_command"]

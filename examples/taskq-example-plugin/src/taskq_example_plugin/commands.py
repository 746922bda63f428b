"""``taskq example-hello``: a small command that shows a plugin can extend the CLI.

taskq imports this module only when the command runs (or when ``taskq --help`` lists
the commands), so a plugin's commands may import whatever they need.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

import click

DISTRIBUTION = "taskq-example-plugin"
# A sample payload to show what jsonz saves on repetitive data: 200 similar records.
SAMPLE = [{"id": i, "status": "pending", "queue": "taskq"} for i in range(200)]


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


@click.command(name="example-hello")
@click.argument("name", default="world")
def hello(name: str) -> None:
    """Greet NAME and show what the jsonz serializer saves on a sample payload."""
    from taskq_example_plugin.serializer import JSONZ

    plain = len(json.dumps(SAMPLE, separators=(",", ":")).encode("utf-8"))
    packed = len(JSONZ.dumps(SAMPLE))
    click.echo(f"Hello, {name}! This is {DISTRIBUTION} {_version()}.")
    click.echo(f"jsonz: a sample of {len(SAMPLE)} records takes {packed} bytes instead of {plain} as json.")

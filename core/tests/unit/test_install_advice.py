"""The install advice for a missing driver: a table read off the plugins under plugins/, kept in step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskq._install_advice import DISTRIBUTIONS, build_table
from taskq.errors import DriverNotFoundError
from taskq.plugins import DRIVER_KINDS, Plugins

REPOSITORY = Path(__file__).resolve().parents[3]


def _advice_tool(*args: str) -> subprocess.CompletedProcess[str]:
    # A child process: the plugins' modules are imported from their sources, not installed here.
    command = [sys.executable, "-m", "taskq._install_advice", *args, str(REPOSITORY)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def offers() -> dict[str, dict[str, list[str]]]:
    """``{distribution: {kind: [names]}}``, as the plugins under plugins/ offer them now."""
    done = _advice_tool("--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, dict[str, list[str]]] = json.loads(done.stdout)
    return found


def test_every_plugin_folder_is_read(offers: dict[str, dict[str, list[str]]]) -> None:
    folders = {path.name for path in (REPOSITORY / "plugins").glob("taskq-*") if (path / "pyproject.toml").is_file()}
    assert set(offers) == folders


def test_every_driver_a_first_party_plugin_offers_advises_that_plugins_distribution(
    offers: dict[str, dict[str, list[str]]],
) -> None:
    checked = []
    for distribution, kinds in offers.items():
        for kind, names in kinds.items():
            for name in names:
                with pytest.raises(DriverNotFoundError, match=rf"pip install {distribution}$"):
                    Plugins().resolve_driver(kind, name)
                checked.append(name)
    assert {"sqlite", "redis", "gevent", "db+postgresql", "rpc"} <= set(checked)


def test_the_table_is_exactly_what_the_plugins_offer() -> None:
    done = _advice_tool("--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_table_knows_only_driver_kinds_the_plugin_manager_knows() -> None:
    assert set(DISTRIBUTIONS) <= set(DRIVER_KINDS)


def test_a_sentinel_url_advises_taskq_redis() -> None:
    with pytest.raises(DriverNotFoundError, match=r"pip install taskq-redis$"):
        Plugins().resolve_driver("transports", "sentinel")


def test_a_name_no_first_party_plugin_offers_advises_no_made_up_distribution() -> None:
    with pytest.raises(DriverNotFoundError) as info:
        Plugins().resolve_driver("pools", "fastpool")
    message = str(info.value)
    assert "pip install" not in message
    assert "No taskq distribution offers it" in message and "taskq plugins" in message


def test_two_plugins_offering_one_driver_name_cannot_be_tabled() -> None:
    offers = {"taskq-a": {"pools": ["fast"]}, "taskq-b": {"pools": ["fast"]}}
    with pytest.raises(ValueError, match="taskq-a and taskq-b both offer the pools driver 'fast'"):
        build_table(offers)

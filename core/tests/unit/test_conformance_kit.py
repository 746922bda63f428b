"""Core's own plugins against the plugin and serializer contracts, and the kit's server helpers."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import taskq.testing.conformance as conformance
from taskq.builtins.pickle import PICKLE
from taskq.drivers.serializer import JSON, Serializer
from taskq.testing.conformance import (
    Binary,
    PluginContract,
    SerializerContract,
    accepts_connections,
    free_port,
    running_server,
    start_server,
)

# ---- Core's built-in plugins are plugins like any other --------------------------------


class TestJsonPlugin(PluginContract):
    entry_point = "json"
    distribution = "taskq-core"
    offers = {"serializers": ["json"]}


class TestPicklePlugin(PluginContract):
    entry_point = "pickle"
    distribution = "taskq-core"
    offers = {"serializers": ["pickle"]}


class TestMemoryPlugin(PluginContract):
    entry_point = "memory"
    distribution = "taskq-core"
    offers = {"transports": ["memory"], "result_backends": ["memory"]}


class TestSchedulersPlugin(PluginContract):
    entry_point = "schedulers"
    distribution = "taskq-core"
    offers = {"schedulers": ["file", "memory"]}


class TestJsonSerializer(SerializerContract):
    @pytest.fixture
    def serializer(self) -> Serializer:
        return JSON


class TestPickleSerializer(SerializerContract):
    @pytest.fixture
    def serializer(self) -> Serializer:
        return PICKLE


def test_the_plugin_contract_fails_for_an_entry_point_that_is_not_installed() -> None:
    class Missing(PluginContract):
        entry_point = "no-such-plugin"
        distribution = "taskq-nothing"

    with pytest.raises(pytest.fail.Exception, match=r"no entry point 'no-such-plugin'.*taskq-nothing"):
        Missing().test_the_entry_point_is_installed_in_the_taskq_plugins_group()


# ---- The kit's exports -------------------------------------------------------------------


KIT_EXPORTS = [
    "MEMCACHED",
    "MOTO",
    "REDIS",
    "SECANTUSDB",
    "BackendForkSafetyContract",
    "Binary",
    "EventLogContract",
    "GreenPoolContract",
    "KeyValueStoreContract",
    "MultiProcessTransportContract",
    "PluginContract",
    "PoolContract",
    "ResultBackendContract",
    "SchedulerContract",
    "SerializerContract",
    "ServerProcess",
    "StandbySchedulerContract",
    "TransportContract",
    "TransportForkSafetyContract",
    "TransportRecipe",
    "accepts_connections",
    "free_port",
    "moto_server",
    "reset_moto",
    "running_server",
    "start_server",
]


def test_the_kit_exports_exactly_its_public_names() -> None:
    assert sorted(conformance.__all__) == sorted(KIT_EXPORTS)
    assert all(hasattr(conformance, name) for name in conformance.__all__)


def test_every_contract_in_the_kit_is_exported() -> None:
    contracts = set()
    for module in pkgutil.iter_modules(conformance.__path__):
        names = getattr(importlib.import_module(f"{conformance.__name__}.{module.name}"), "__all__", ())
        contracts.update(name for name in names if name.endswith("Contract"))
    assert contracts <= set(conformance.__all__), f"not exported: {sorted(contracts - set(conformance.__all__))}"


# ---- Servers the tests start themselves ------------------------------------------------

#: This interpreter, found beside itself as any virtualenv script is.
PYTHON = Binary(Path(sys.executable).name, "the Python that runs these tests")


def test_free_port_gives_a_port_nothing_listens_on() -> None:
    assert not accepts_connections(free_port())


def test_a_server_is_waited_for_and_stopped_by_its_pid(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with running_server(PYTHON, "-m", "http.server", "{port}", "--bind", "{host}", log=log) as server:
        assert accepts_connections(server.port)
        assert server.is_running()
    assert not server.is_running()
    assert not accepts_connections(server.port)


def test_a_missing_binary_fails_with_the_command_that_installs_it() -> None:
    missing = Binary("taskq-no-such-server", "apt-get install -y taskq-no-such-server")
    with pytest.raises(pytest.fail.Exception, match=r"install it with:\n    apt-get install -y taskq-no-such-server"):
        start_server(missing)


def test_a_server_that_exits_at_once_fails_with_its_exit_code_and_the_command_to_try() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"exited with code 3.*Try it by hand:\n.*SystemExit\(3\)"):
        start_server(PYTHON, "-c", "raise SystemExit(3)")


def test_a_server_that_never_gets_ready_fails_at_the_deadline() -> None:
    with pytest.raises(pytest.fail.Exception, match="not ready within 1s"):
        start_server(PYTHON, "-c", "import time; time.sleep(30)", timeout=1.0)

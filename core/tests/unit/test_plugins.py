"""Plugin discovery, selection, driver lookup and the calling of event hooks."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from taskq.drivers.serializer import Serializer
from taskq.errors import DriverNotFoundError, PluginError
from taskq.plugins import Plugins, load_plugins

MakePlugin = Callable[..., types.ModuleType]

BUILTINS = {"json", "pickle", "memory", "schedulers"}


def test_load_plugins_finds_the_core_builtins_through_entry_points() -> None:
    plugins = load_plugins()
    builtin = {info.name for info in plugins.describe() if info.is_builtin and info.enabled}
    assert builtin == BUILTINS
    assert {"json", "pickle"} <= set(plugins.drivers("serializers"))
    assert "memory" in plugins.drivers("transports")
    assert "memory" in plugins.drivers("result_backends")
    assert {"file", "memory"} <= set(plugins.drivers("schedulers"))
    assert plugins.drivers("schedulers")["file"].plugin == "schedulers"


def test_builtin_drivers_are_offered_by_their_own_plugins() -> None:
    plugins = load_plugins()
    assert plugins.drivers("serializers")["json"].plugin == "json"
    assert plugins.drivers("transports")["memory"].plugin == "memory"


def test_disable_removes_a_builtin_plugin() -> None:
    plugins = load_plugins(disable=["pickle"])
    assert "pickle" not in plugins.drivers("serializers")
    assert "json" in plugins.drivers("serializers")
    info = next(i for i in plugins.describe() if i.name == "pickle")
    assert not info.enabled


def test_enable_list_keeps_the_builtins_and_drops_other_plugins() -> None:
    plugins = load_plugins(enable=[])
    loaded = {info.name for info in plugins.describe() if info.enabled}
    assert loaded == BUILTINS
    assert "solo" not in plugins.drivers("pools")


def test_enabled_plugin_that_is_not_installed_is_listed_as_a_failure() -> None:
    plugins = load_plugins(enable=["no-such-plugin"])
    info = next(i for i in plugins.describe() if i.name == "no-such-plugin")
    assert not info.enabled
    assert info.error is not None and "not installed" in info.error


def test_extra_plugin_object_offers_a_driver(make_plugin: MakePlugin) -> None:
    extra = make_plugin("acme", taskq_register_pools=lambda: {"acme": "taskq_solo.pool:SoloPool"})
    plugins = load_plugins(extra=[extra])
    from taskq_solo.pool import SoloPool

    assert plugins.resolve_driver("pools", "acme") is SoloPool
    assert plugins.drivers("pools")["acme"].plugin == "acme"


def test_driver_offered_as_an_object_is_returned_as_is(make_plugin: MakePlugin) -> None:
    serializer = Serializer("upper", "text/x-upper", "utf-8", lambda v: str(v).upper().encode(), bytes.decode)
    plugins = Plugins()
    plugins.register(make_plugin("upper", taskq_register_serializers=lambda: {"upper": serializer}))
    assert plugins.resolve_driver("serializers", "upper") is serializer
    assert plugins.serializers() == [serializer]


def test_two_plugins_offering_the_same_pool_is_an_error_naming_both(make_plugin: MakePlugin) -> None:
    plugins = Plugins()
    plugins.register(
        make_plugin("acme", taskq_register_pools=lambda: {"fast": "acme.pool:Fast"}),
        "acme",
        distribution="acme-taskq",
        version="1.2",
    )
    plugins.register(
        make_plugin("fastpool", taskq_register_pools=lambda: {"fast": "fastpool.pool:Fast"}),
        "fastpool",
        distribution="taskq-fastpool",
        version="0.3",
    )
    with pytest.raises(PluginError) as info:
        plugins.drivers("pools")
    message = str(info.value)
    assert "two plugins offer the pool 'fast'" in message
    assert "acme-taskq 1.2" in message
    assert "taskq-fastpool 0.3" in message
    assert '[plugins]\n  disable = ["fastpool"]' in message


def test_plugin_conflicting_with_an_installed_plugin_names_the_installed_one(make_plugin: MakePlugin) -> None:
    extra = make_plugin("acme", taskq_register_pools=lambda: {"solo": "acme.pool:Solo"})
    plugins = load_plugins(extra=[extra])
    with pytest.raises(PluginError, match=r"taskq-solo .*'solo'.* and .*'acme'"):
        plugins.drivers("pools")


def test_resolving_a_missing_pool_lists_the_installed_ones_and_the_distribution() -> None:
    # Only solo among the third-party plugins, whatever else this environment has.
    plugins = load_plugins(enable=["solo"])
    with pytest.raises(DriverNotFoundError) as info:
        plugins.resolve_driver("pools", "gevent")
    message = str(info.value)
    assert "no pool named 'gevent'; installed: " in message
    assert "solo" in message
    assert "pip install taskq-gevent" in message


def test_resolving_a_missing_well_known_transport_names_its_distribution() -> None:
    plugins = load_plugins(enable=[])
    with pytest.raises(DriverNotFoundError, match="pip install taskq-amqp"):
        plugins.resolve_driver("transports", "amqp")


def test_resolving_when_no_driver_of_the_kind_is_installed_says_none() -> None:
    with pytest.raises(DriverNotFoundError, match="installed: none"):
        Plugins().resolve_driver("schedulers", "redbeat")


def test_plugin_with_a_misspelled_hook_name_is_rejected(make_plugin: MakePlugin) -> None:
    plugins = Plugins()
    typo = make_plugin("typo", taskq_register_pool=lambda: {"x": "y:Z"})
    with pytest.raises(PluginError, match=r"plugin 'typo' .*does not fit.*taskq_register_pool"):
        plugins.register(typo)
    assert "typo" not in plugins.infos
    assert plugins.manager.get_plugin("typo") is None


def test_plugin_whose_hook_takes_an_unknown_argument_is_rejected(make_plugin: MakePlugin) -> None:
    plugins = Plugins()
    bad = make_plugin("bad", taskq_worker_ready=lambda worker, colour: None)
    with pytest.raises(PluginError, match="plugin 'bad'"):
        plugins.register(bad)
    assert plugins.manager.get_plugin("bad") is None


def test_driver_that_fails_to_import_names_the_plugin(make_plugin: MakePlugin) -> None:
    plugins = Plugins()
    plugins.register(
        make_plugin("broken", taskq_register_pools=lambda: {"broken": "no_such_module_xyz.pool:Pool"}),
        "broken",
        distribution="taskq-broken",
        version="9.9",
    )
    with pytest.raises(PluginError) as info:
        plugins.resolve_driver("pools", "broken")
    message = str(info.value)
    assert "taskq-broken 9.9" in message
    assert "'broken'" in message
    assert "ModuleNotFoundError" in message
    assert not isinstance(info.value, DriverNotFoundError)


def test_driver_hook_that_raises_is_a_plugin_error_naming_the_plugin(make_plugin: MakePlugin) -> None:
    def explode() -> dict[str, str]:
        raise RuntimeError("boom")

    plugins = Plugins()
    plugins.register(make_plugin("explosive", taskq_register_pools=explode))
    with pytest.raises(PluginError, match="plugin 'explosive' failed in taskq_register_pools: boom"):
        plugins.drivers("pools")


def test_event_hook_that_raises_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture, make_plugin: MakePlugin
) -> None:
    seen: list[str] = []

    def fails(worker: object) -> None:
        seen.append("fails")
        raise RuntimeError("hook broke")

    plugins = Plugins()
    plugins.register(make_plugin("first", taskq_worker_ready=lambda worker: seen.append("first")))
    plugins.register(make_plugin("faulty", taskq_worker_ready=fails))
    plugins.register(make_plugin("last", taskq_worker_ready=lambda worker: seen.append("last")))
    with caplog.at_level(logging.ERROR, logger="taskq.plugins"):
        plugins.worker_ready(object())  # type: ignore[arg-type]
    assert sorted(seen) == ["fails", "first", "last"]
    [record] = [r for r in caplog.records if r.name == "taskq.plugins"]
    assert "plugin faulty raised in taskq_worker_ready" in record.getMessage()
    assert record.exc_info is not None and "hook broke" in str(record.exc_info[1])


def test_event_hooks_get_only_the_arguments_they_name(make_plugin: MakePlugin) -> None:
    got: list[object] = []
    plugins = Plugins()
    plugins.register(make_plugin("narrow", taskq_task_retry=lambda reason: got.append(reason)))
    reason = ValueError("x")
    plugins.task_retry(object(), object(), reason)  # type: ignore[arg-type]
    assert got == [reason]


def test_has_impl_is_true_only_for_implemented_hooks(make_plugin: MakePlugin) -> None:
    plugins = Plugins()
    assert not plugins.has_impl("taskq_before_publish")
    plugins.register(make_plugin("pub", taskq_before_publish=lambda headers: None))
    assert plugins.has_impl("taskq_before_publish")
    assert not plugins.has_impl("taskq_after_publish")


def test_describe_lists_each_plugin_with_its_drivers() -> None:
    plugins = load_plugins()
    infos = {info.name: info for info in plugins.describe()}
    assert infos["memory"].drivers == {"result_backends": ["memory"], "transports": ["memory"]}
    assert infos["json"].distribution == "taskq-core"
    assert infos["solo"].drivers == {"pools": ["solo"]}


# ---- Entry-point plugins in a child process, installed into a folder of the test's own ----

# What the child prints: each acme plugin's state, and whether its module was imported.
DESCRIBE_ACME = (
    "import json, sys\n"
    "from taskq.plugins import load_plugins\n"
    "enable = json.loads(sys.argv[1])\n"
    "plugins = load_plugins(enable)\n"
    "print(json.dumps({i.name: [i.enabled, i.error, i.distribution, i.module in sys.modules]\n"
    "                  for i in plugins.describe() if i.module.startswith('acme')}))\n"
)


def _install_plugin(site: Path, name: str, body: str) -> None:
    """The distribution ``acme-<name>`` with the plugin ``name`` = ``acme_<name>`` (whose code is ``body``)."""
    package = f"acme_{name}"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(body)
    info = site / f"{package}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: acme-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[taskq.plugins]\n{name} = {package}\n")


def _describe_in_child(site: Path, enable: list[str] | None) -> dict[str, list[object]]:
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(site.parent / "cache")}
    command = [sys.executable, "-c", DESCRIBE_ACME, json.dumps(enable)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    found: dict[str, list[object]] = json.loads(done.stdout)
    return found


GOOD_PLUGIN = (
    "from taskq import hookimpl\n\n"
    "@hookimpl\n"
    "def taskq_register_pools():\n"
    "    return {'acme': 'taskq_solo.pool:SoloPool'}\n"
)


def test_a_plugin_that_fails_to_import_is_listed_with_its_error_and_the_others_load(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install_plugin(site, "broken", "raise ImportError('needs libacme 2')\n")
    _install_plugin(site, "good", GOOD_PLUGIN)
    found = _describe_in_child(site, None)
    assert found["broken"] == [False, "ImportError: needs libacme 2", "acme-broken", False]
    assert found["good"] == [True, None, "acme-good", True]


def test_a_plugin_left_out_of_the_enable_list_is_listed_but_never_imported(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install_plugin(site, "good", GOOD_PLUGIN)
    _install_plugin(site, "other", GOOD_PLUGIN.replace("'acme'", "'other'"))
    found = _describe_in_child(site, ["good"])
    assert found["good"] == [True, None, "acme-good", True]
    assert found["other"] == [False, None, "acme-other", False]

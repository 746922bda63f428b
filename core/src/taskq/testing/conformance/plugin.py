"""The plugin contract as a test suite: subclass :class:`PluginContract` and name your plugin.

    class TestRedisPlugin(PluginContract):
        entry_point = "redis"
        distribution = "taskq-redis"

It checks what every plugin promises, whatever drivers it offers: its entry point is
installed in the group ``taskq.plugins``; importing its module stays cheap (in a fresh
interpreter, the import adds no driver module and no module outside taskq and the
plugin's own package); and every driver it offers imports and is what its kind requires.
The drivers themselves are checked by the driver contracts (:class:`TransportContract`,
:class:`ResultBackendContract`, ...).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Collection, Mapping
from types import ModuleType

import pytest

from taskq import _entry_points
from taskq.plugins import DRIVER_KINDS, ENTRY_POINT_GROUP, Plugins, import_string

# Seconds the fresh interpreter that imports the plugin module may take.
IMPORT_CHECK_TIMEOUT = 60.0

#: What a child interpreter prints: the modules that importing the plugin module adds to
#: those taskq itself and its plugin contract load.
_MODULES_ADDED_BY_IMPORT = (
    "import importlib, json, sys\n"
    "import taskq, taskq.hookspecs, taskq.plugins\n"
    "before = set(sys.modules)\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(json.dumps(sorted(set(sys.modules) - before)))\n"
)


def _base_classes() -> dict[str, type]:
    """The class each kind of driver must be (or be an instance of, for serializers and commands)."""
    import click

    from taskq.drivers.backend import ResultBackend
    from taskq.drivers.bootstep import Step
    from taskq.drivers.pool import Pool
    from taskq.drivers.scheduler import Scheduler
    from taskq.drivers.serializer import Serializer
    from taskq.drivers.transport import Transport

    return {
        "transports": Transport,
        "result_backends": ResultBackend,
        "pools": Pool,
        "schedulers": Scheduler,
        "serializers": Serializer,
        "bootsteps": Step,
        "commands": click.Command,
    }


#: Kinds whose drivers are objects (an instance of the base class), not classes.
INSTANCE_KINDS = frozenset({"serializers", "commands"})


class PluginContract:
    """Reusable tests for a plugin: its entry point, its module, and the drivers it offers.

    Set ``entry_point`` (the name in ``taskq.plugins``) and ``distribution``. Optionally set
    ``offers`` (``{kind: names}``) to pin exactly which drivers the plugin offers, and
    ``allowed_imports`` to name modules outside taskq and the plugin's package that its
    module may import (keep it cheap: a heavy library belongs in the driver module).
    """

    entry_point: str = ""
    distribution: str = ""
    offers: Mapping[str, Collection[str]] | None = None
    allowed_imports: Collection[str] = ()

    # ---- Helpers -------------------------------------------------------------------

    def entry_point_value(self) -> str:
        """``package.module`` as the installed entry point names it."""
        for found in _entry_points.entry_points(ENTRY_POINT_GROUP):
            if found.name == self.entry_point:
                return found.value
        installed = sorted(found.name for found in _entry_points.entry_points(ENTRY_POINT_GROUP))
        pytest.fail(
            f"no entry point {self.entry_point!r} in the group {ENTRY_POINT_GROUP!r}; installed: "
            f"{', '.join(installed)}. Declare it in {self.distribution}'s pyproject.toml under "
            f'[project.entry-points."{ENTRY_POINT_GROUP}"] and reinstall the distribution.'
        )

    def plugin_module(self) -> ModuleType:
        return importlib.import_module(self.entry_point_value().partition(":")[0].strip())

    def plugins(self) -> Plugins:
        """A manager with this plugin alone registered, as the worker would register it."""
        plugins = Plugins()
        plugins.register(self.plugin_module(), self.entry_point, distribution=self.distribution)
        return plugins

    def offered(self) -> dict[str, dict[str, object]]:
        """``{kind: {name: target}}`` for every named driver the plugin offers."""
        plugins = self.plugins()
        return {
            kind: {name: entry.target for name, entry in plugins.drivers(kind).items()}
            for kind in DRIVER_KINDS
            if plugins.drivers(kind)
        }

    def bootsteps(self) -> list[str]:
        return self.plugins().bootsteps()

    def driver_modules(self) -> set[str]:
        """The modules the plugin's drivers live in (import strings only)."""
        targets: list[object] = [t for drivers in self.offered().values() for t in drivers.values()]
        targets.extend(self.bootsteps())
        modules = set()
        for target in targets:
            if isinstance(target, str):
                module, _, attr = target.partition(":")
                modules.add(module if attr else target.rpartition(".")[0])
        return modules

    # ---- The entry point -------------------------------------------------------------

    def test_the_entry_point_is_installed_in_the_taskq_plugins_group(self) -> None:
        assert self.entry_point, "set entry_point to the plugin's name in the taskq.plugins group"
        value = self.entry_point_value()
        found = _entry_points.distribution_of(ENTRY_POINT_GROUP, self.entry_point, value)[0]
        assert found == self.distribution, (
            f"the entry point {self.entry_point!r} comes from {found}, not {self.distribution}"
        )

    def test_the_plugin_module_fits_the_hookspecs(self) -> None:
        plugins = self.plugins()  # raises PluginError, naming the hook, when one does not fit
        assert plugins.infos[self.entry_point].enabled

    def test_the_plugin_offers_a_driver_or_implements_a_hook(self) -> None:
        plugins = self.plugins()
        hooks = [name for name in dir(plugins.manager.hook) if name.startswith("taskq_")]
        implemented = [name for name in hooks if plugins.has_impl(name)]
        assert implemented, f"the plugin {self.entry_point!r} implements no taskq hook"

    def test_the_plugin_offers_exactly_the_drivers_it_declares(self) -> None:
        if self.offers is None:
            pytest.skip("set offers = {kind: names} to pin the drivers this plugin offers")
        expected = {kind: sorted(names) for kind, names in self.offers.items() if names}
        assert {kind: sorted(drivers) for kind, drivers in self.offered().items()} == expected

    # ---- Importing the plugin module -------------------------------------------------------

    def test_importing_the_plugin_module_imports_no_driver_and_nothing_heavy(self) -> None:
        module = self.entry_point_value().partition(":")[0].strip()
        child = subprocess.run(
            [sys.executable, "-c", _MODULES_ADDED_BY_IMPORT, module],
            capture_output=True,
            text=True,
            timeout=IMPORT_CHECK_TIMEOUT,
            check=False,
        )
        assert child.returncode == 0, f"importing {module} failed in a fresh interpreter:\n{child.stderr}"
        added = set(json.loads(child.stdout))
        drivers = sorted(added & self.driver_modules())
        assert not drivers, f"importing {module} imports its driver modules {drivers}; import them by string"
        package = module.partition(".")[0]
        foreign = sorted(
            name
            for name in added
            if name.partition(".")[0] not in (package, "taskq") and name not in self.allowed_imports
        )
        assert not foreign, (
            f"importing {module} imports {', '.join(foreign)}; a plugin module must stay cheap: "
            f"import libraries in the driver modules, or inside the hook that needs them"
        )

    # ---- The drivers it offers ----------------------------------------------------------------

    def test_each_driver_resolves_to_the_base_class_of_its_kind(self) -> None:
        plugins = self.plugins()
        bases = _base_classes()
        wrong = []
        for kind, drivers in self.offered().items():
            base = bases[kind]
            for name in drivers:
                driver = plugins.resolve_driver(kind, name)
                fits = isinstance(driver, base) if kind in INSTANCE_KINDS else _is_subclass(driver, base)
                if not fits:
                    wrong.append(f"{kind} {name!r} is {driver!r}, not a {base.__module__}.{base.__qualname__}")
        assert not wrong, "; ".join(wrong)

    def test_each_bootstep_is_a_step(self) -> None:
        step_class = _base_classes()["bootsteps"]
        for target in self.bootsteps():
            step = import_string(target)
            assert _is_subclass(step, step_class), f"the bootstep {target!r} is not a taskq.drivers.bootstep.Step"


def _is_subclass(candidate: object, base: type) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, base)


__all__ = ["PluginContract"]

"""The driver API: what ``taskq.drivers`` offers plugin authors, pinned so a change is a decision."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import taskq.drivers
import taskq.drivers.support
from taskq import hookspecs

DRIVER_API = [
    "CONTROL",
    "INSPECT",
    "Command",
    "CommandError",
    "ControlState",
    "Letter",
    "Mailbox",
    "MailboxReader",
    "command",
    "DEFAULT_LEASE_SECONDS",
    "JSON",
    "BackendCapabilities",
    "Capabilities",
    "ChordPart",
    "DeadLetter",
    "Delivery",
    "EntryState",
    "Job",
    "KeyValueBackend",
    "LeasedScheduler",
    "Message",
    "Meta",
    "Pool",
    "PoolCapabilities",
    "Request",
    "ResultBackend",
    "ScheduleEntry",
    "Scheduler",
    "Serializer",
    "Step",
    "Transport",
    "Worker",
    "exception_to_meta",
    "meta_to_exception",
]

DRIVERS = Path(taskq.drivers.__file__).parent


def test_driver_api_is_pinned() -> None:
    assert sorted(taskq.drivers.__all__) == sorted(DRIVER_API)


def test_every_driver_api_name_imports_from_the_package() -> None:
    for name in taskq.drivers.__all__:
        assert getattr(taskq.drivers, name) is not None, name


def test_each_driver_module_exports_only_what_the_package_lists_or_its_own_helpers() -> None:
    for path in sorted(DRIVERS.glob("*.py")):
        if path.name == "__init__.py":
            continue
        module = importlib.import_module(f"taskq.drivers.{path.stem}")
        assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names {name!r}, which it lacks"


def test_every_support_module_is_listed_and_imports() -> None:
    found = sorted(p.stem for p in (DRIVERS / "support").glob("*.py") if p.stem != "__init__")
    assert sorted(taskq.drivers.support.__all__) == found
    for name in found:
        module = importlib.import_module(f"taskq.drivers.support.{name}")
        assert module.__doc__, f"taskq.drivers.support.{name} has no docstring"


def test_hookspecs_name_driver_classes_only_through_taskq_drivers() -> None:
    source = inspect.getsource(hookspecs)
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("taskq"):
            assert node.module in {"taskq", "taskq.drivers"}, f"hookspecs imports from {node.module}"
    for reference in _class_references(source):
        assert reference.startswith("taskq.drivers."), f"hookspecs points at {reference}"
        assert reference.removeprefix("taskq.drivers.") in taskq.drivers.__all__, reference


def _class_references(text: str) -> list[str]:
    import re

    return re.findall(r":class:`~?(taskq\.[\w.]+)`", text)

"""Layering: a plugin imports taskq's public user and driver API, never another plugin or core internals.

Read from the sources under ``plugins/*/src`` (imports under ``TYPE_CHECKING`` count too:
they are what a plugin's types depend on). What a plugin may import from core:

* the user API: ``taskq`` itself, ``taskq.errors``, ``taskq.states``, ``taskq.beat``
  (the schedules), and the monitoring API: ``taskq.events`` (the receiver, and the cluster
  ``State`` of ``taskq.events.state``) and ``taskq.graph`` (a workflow's tree);
* the driver API: ``taskq.hookspecs`` (the contract) and ``taskq.drivers`` with its
  modules, ``taskq.drivers.support`` included.

Anything else (``taskq.worker``, ``taskq.app``, ``taskq._protocol``, ...) is core's own
machinery: a plugin that needs something from it asks for it to move into the driver API.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted(ROOT.glob("plugins/taskq-*/src/taskq_*"))
#: Core modules a plugin may import, exactly.
ALLOWED_MODULES = frozenset(
    {"taskq", "taskq.errors", "taskq.states", "taskq.beat", "taskq.hookspecs", "taskq.events", "taskq.events.state"}
    | {"taskq.graph"}
)
#: Core packages a plugin may import with every module below them.
ALLOWED_PACKAGES = ("taskq.drivers",)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``path``, ``from x import y`` as ``x.y`` when y is a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def offences(package: Path, root: Path = ROOT) -> list[str]:
    """Every import in ``package`` that breaks the layering, as ``path:line what``."""
    own = package.name
    problems = []
    for path in sorted(package.rglob("*.py")):
        for line, module in imported_modules(path):
            where = f"{path.relative_to(root)}:{line}"
            top = module.split(".")[0]
            if top.startswith("taskq_") and top != own:
                problems.append(f"{where} imports another plugin: {module}")
            elif top == "taskq" and not is_allowed(module):
                problems.append(f"{where} imports core internals: {module}")
    return problems


def is_allowed(module: str) -> bool:
    return module in ALLOWED_MODULES or any(module == p or module.startswith(p + ".") for p in ALLOWED_PACKAGES)


def test_every_plugin_is_checked() -> None:
    assert len(PLUGIN_SOURCES) >= 16, [p.name for p in PLUGIN_SOURCES]


@pytest.mark.parametrize("package", PLUGIN_SOURCES, ids=lambda p: p.name)
def test_plugin_imports_only_the_public_user_and_driver_api(package: Path) -> None:
    problems = offences(package)
    advice = (
        "Import from taskq, taskq.errors, taskq.states, taskq.beat, taskq.events, taskq.graph, taskq.hookspecs "
        "or taskq.drivers.*; "
        "move what a plugin needs from core's machinery into taskq.drivers first."
    )
    assert not problems, "\n".join([*problems, advice])


def test_the_check_catches_a_plugin_importing_another_plugin_and_core_internals(tmp_path: Path) -> None:
    package = tmp_path / "plugins" / "taskq-bad" / "src" / "taskq_bad"
    package.mkdir(parents=True)
    (package / "mod.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import taskq_redis\n"
        "from taskq.drivers.transport import Transport\n"
        "if TYPE_CHECKING:\n"
        "    from taskq.worker.request import Request\n"
    )
    problems = [p.split(" ", 1)[1] for p in offences(package, tmp_path)]
    assert problems == ["imports another plugin: taskq_redis", "imports core internals: taskq.worker.request"]

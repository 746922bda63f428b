"""The plugin contract stays whole: every hook is documented and has its own test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from taskq import hookspecs

REPO_ROOT = Path(__file__).parents[3]
HOOKS_DOC = REPO_ROOT / "docs" / "plugins" / "hooks.md"
CORE_TESTS = REPO_ROOT / "core" / "tests"


def hookspec_names() -> list[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return [
        name
        for name, value in vars(hookspecs).items()
        if name.startswith("taskq_") and inspect.isfunction(value) and hasattr(value, marker)
    ]


def test_hookspecs_are_found() -> None:
    names = hookspec_names()
    assert "taskq_register_pools" in names
    assert "taskq_task_rejected" in names


def test_every_hookspec_is_documented_and_tested() -> None:
    assert HOOKS_DOC.is_file(), f"{HOOKS_DOC} is missing"
    headings = set(re.findall(r"^##\s+`?(taskq_\w+)`?\s*$", HOOKS_DOC.read_text(encoding="utf-8"), re.MULTILINE))
    tests: set[str] = set()
    for path in CORE_TESTS.rglob("*.py"):
        tests.update(re.findall(r"^\s*def (test_hook_taskq_\w+)\(", path.read_text(encoding="utf-8"), re.MULTILINE))
    undocumented = [name for name in hookspec_names() if name not in headings]
    untested = [name for name in hookspec_names() if f"test_hook_{name}" not in tests]
    assert not undocumented, f"hooks without a '## <name>' section in {HOOKS_DOC}: {undocumented}"
    assert not untested, f"hooks without a test_hook_<name> test under {CORE_TESTS}: {untested}"


def test_every_hook_is_named_taskq_something() -> None:
    marker = f"{hookspecs.PROJECT}_spec"
    specs = [name for name, value in vars(hookspecs).items() if inspect.isfunction(value) and hasattr(value, marker)]
    assert specs == hookspec_names()


def test_every_hookspec_docstring_says_when_it_was_added() -> None:
    for name in hookspec_names():
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Added in" in doc, name

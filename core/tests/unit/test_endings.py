"""How a task's end is recorded: one place per ending, each hook fired from exactly one call."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

import taskq
from taskq import App, hookspecs
from taskq.errors import Reject

SOURCE = Path(taskq.__file__).parent
TASK_HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("taskq_task_"))


def _hook_calls() -> dict[str, list[str]]:
    """Where core calls each task hook: ``plugins.task_success(...)``, or the hook itself."""
    calls: dict[str, list[str]] = {hook: [] for hook in TASK_HOOKS}
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            hook = name if name.startswith("taskq_") else f"taskq_{name}"
            if hook in calls:
                calls[hook].append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    return calls


def test_the_task_hooks_are_found_in_the_contract() -> None:
    assert TASK_HOOKS == [
        "taskq_task_failure",
        "taskq_task_internal_error",
        "taskq_task_postrun",
        "taskq_task_prerun",
        "taskq_task_received",
        "taskq_task_rejected",
        "taskq_task_retry",
        "taskq_task_revoked",
        "taskq_task_success",
        "taskq_task_unknown",
    ]


@pytest.mark.parametrize("hook", TASK_HOOKS)
def test_each_task_hook_has_exactly_one_call_site_in_the_endings_module(hook: str) -> None:
    sites = _hook_calls()[hook]
    assert len(sites) == 1, f"{hook} is called from {len(sites)} places: {', '.join(sites) or 'none'}"
    assert sites[0].startswith("worker/endings.py:"), f"{hook} is called from {sites[0]}, not worker/endings.py"


def test_a_task_that_rejects_its_message_says_so_once_and_is_dead_lettered(
    app: App, start_worker: Callable[..., object], wait_until: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def refuse() -> None:
        raise Reject("not today")

    start_worker(app)
    refuse.delay()
    wait_until(lambda: "dead-lettered a message" in caplog.text, "the dead letter")
    assert caplog.text.count("rejected its message") == 1
    assert "rejected by the task: not today" in caplog.text

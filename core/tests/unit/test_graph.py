"""taskq graph: the recorded shape of a workflow, read back with each task's state."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from taskq import App, GroupResult, chain, chord, group, states
from taskq.drivers.backend import WORKFLOW_PREFIX, WORKFLOW_STATE
from taskq.errors import SerializationError
from taskq.graph import render_dot, render_text, workflow_tree

TIMEOUT = 10.0


@pytest.fixture
def app(memory_url: str) -> App:
    app = App("graph", broker=memory_url, read_config=False)

    @app.task(name="g.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="g.tsum")
    def tsum(values: list[object]) -> int:
        return sum(sum(v) if isinstance(v, list) else v for v in values)  # type: ignore[misc, arg-type]

    @app.task(name="g.boom")
    def boom(*_args: object) -> None:
        raise ValueError("boom")

    @app.task(name="g.fanout")
    def fanout(n: int) -> int:
        for i in range(n):
            add.delay(i, i)
        return n

    return app


def tasks_of(node: dict[str, object]) -> Iterator[dict[str, object]]:
    if node["kind"] == "task":
        yield node
        for child in node.get("children") or []:  # type: ignore[attr-defined]
            yield from tasks_of(child)
    for key in ("steps", "members"):
        for part in node.get(key) or []:  # type: ignore[attr-defined]
            yield from tasks_of(part)
    if node["kind"] == "chord":
        yield from tasks_of(node["header"])  # type: ignore[arg-type]
        yield from tasks_of(node["body"])  # type: ignore[arg-type]


def test_a_workflow_is_shown_whole_before_any_task_runs(app: App) -> None:
    add, tsum = app.tasks["g.add"], app.tasks["g.tsum"]
    result = chain(add.s(1, 1), chord([add.s(1), group(add.s(2), add.s(3))], tsum.s()), add.s(5)).apply_async()
    tree = workflow_tree(result.id, app)
    assert tree["kind"] == "chain" and tree["state"] == states.PENDING
    first, middle, last = tree["steps"]  # type: ignore[misc]
    assert first["task"] == "g.add" and last["id"] == result.id
    assert middle["kind"] == "chord"
    header = middle["header"]
    assert header["kind"] == "group" and header["total"] == 2 and header["ended"] == 0
    assert header["members"][1]["kind"] == "group"  # a group inside the header
    assert middle["body"]["task"] == "g.tsum"
    assert [node["state"] for node in tasks_of(tree)] == [states.PENDING] * 6
    assert result.parent is not None and result.parent.id == middle["body"]["id"]  # the ids the tasks carry


def test_each_task_shows_its_state_and_result_once_the_workflow_ran(
    app: App, start_worker: Callable[..., object]
) -> None:
    add, tsum = app.tasks["g.add"], app.tasks["g.tsum"]
    start_worker(app)
    result = chain(add.s(1, 1), chord([add.s(1), group(add.s(2), add.s(3))], tsum.s()), add.s(5)).apply_async()
    assert result.get(timeout=TIMEOUT) == 3 + 4 + 5 + 5
    tree = workflow_tree(result.id, app)
    assert tree["state"] == states.SUCCESS
    assert [node["result"] for node in tasks_of(tree)] == [2, 3, 4, 5, 12, 17]
    text = render_text(tree)
    assert text.splitlines()[0] == "chain  SUCCESS  (3 steps)"
    assert "header: group[" in text and "(2 of 2 ended)" in text and "body: g.tsum[" in text


def test_a_failed_step_fails_the_chain_and_what_follows_is_shown_failed(
    app: App, start_worker: Callable[..., object]
) -> None:
    add, boom = app.tasks["g.add"], app.tasks["g.boom"]
    start_worker(app)
    result = chain(add.s(1, 1), boom.s(), add.s(1)).apply_async()
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=TIMEOUT)
    tree = workflow_tree(result.id, app)
    assert tree["state"] == states.FAILURE
    assert [step["state"] for step in tree["steps"]] == [states.SUCCESS, states.FAILURE, states.FAILURE]  # type: ignore[attr-defined]


def test_the_tasks_a_task_sent_hang_below_it(app: App, start_worker: Callable[..., object]) -> None:
    start_worker(app)
    result = app.tasks["g.fanout"].delay(3)
    assert result.get(timeout=TIMEOUT) == 3
    for child in result.children:
        child.get(timeout=TIMEOUT)
    tree = workflow_tree(result.id, app)
    assert tree["kind"] == "task" and tree["state"] == states.SUCCESS
    assert sorted(child["result"] for child in tree["children"]) == [0, 2, 4]  # type: ignore[attr-defined]
    assert "children" not in workflow_tree(result.id, app, children=False)


def test_a_group_shows_its_members_and_each_send_is_its_own(app: App, start_worker: Callable[..., object]) -> None:
    add = app.tasks["g.add"]
    flow = group(add.s(1, 1), add.s(2, 2))
    start_worker(app)
    first, second = flow.apply_async(), flow.apply_async()
    assert first.get(timeout=TIMEOUT) == second.get(timeout=TIMEOUT) == [2, 4]
    trees = [workflow_tree(result.id, app) for result in (first, second)]
    assert [[m["id"] for m in tree["members"]] for tree in trees] == [first.ids, second.ids]  # type: ignore[attr-defined]
    assert trees[0]["ended"] == trees[0]["total"] == 2
    saved = GroupResult("saved-by-hand", [app.AsyncResult(i) for i in first.ids], app=app)
    saved.save()  # a group no workflow recorded is shown from its saved members
    assert [m["id"] for m in workflow_tree("saved-by-hand", app)["members"]] == first.ids  # type: ignore[attr-defined]


def test_only_the_workflow_sent_is_recorded_not_its_parts(app: App) -> None:
    add, tsum = app.tasks["g.add"], app.tasks["g.tsum"]
    result = chord([group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)], tsum.s()).apply_async()
    backend = app.backend
    assert backend.restore_workflow(result.id) is not None
    tree = workflow_tree(result.id, app)
    inner = tree["header"]["members"][0]  # type: ignore[index]
    assert backend.restore_workflow(inner["id"]) is None


def test_an_unknown_id_is_shown_as_one_pending_task(app: App) -> None:
    assert workflow_tree("nobody-sent-this", app) == {"kind": "task", "id": "nobody-sent-this", "state": "PENDING"}


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ("not a tree", "not a mapping"),
        ({"kind": "chain", "steps": "x"}, "no list of steps"),
        ({"kind": "group", "members": []}, "has no text id"),
        ({"kind": "chord", "header": {"kind": "task", "id": "a"}, "body": {"kind": "task", "id": "b"}}, "not a group"),
        ({"kind": "spiral"}, "unknown kind"),
    ],
)
def test_a_malformed_shape_in_the_store_is_an_error_that_says_what_is_wrong(
    app: App, shape: object, reason: str
) -> None:
    key = WORKFLOW_PREFIX + "hostile"
    app.backend.store_meta(key, {"status": WORKFLOW_STATE, "result": shape, "task_id": key})
    if not isinstance(shape, dict):
        assert app.backend.restore_workflow("hostile") is None  # not a shape at all: shown as a task
        return
    with pytest.raises(SerializationError, match=reason):
        workflow_tree("hostile", app)


def test_a_shape_nested_too_deeply_is_refused_not_a_recursion_error(app: App) -> None:
    shape: dict[str, object] = {"kind": "task", "id": "leaf"}
    for _ in range(200):  # past MAX_DEPTH, within what the store can encode
        shape = {"kind": "chain", "steps": [shape]}
    key = WORKFLOW_PREFIX + "deep"
    app.backend.store_meta(key, {"status": WORKFLOW_STATE, "result": shape, "task_id": key})
    with pytest.raises(SerializationError, match="nested deeper"):
        workflow_tree("deep", app)


def test_the_dot_output_draws_header_tasks_into_the_body(app: App) -> None:
    add, tsum = app.tasks["g.add"], app.tasks["g.tsum"]
    result = chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async()
    tree = workflow_tree(result.id, app)
    dot = render_dot(tree)
    assert dot.startswith("digraph workflow {") and dot.endswith("}")
    for member in tree["header"]["members"]:  # type: ignore[index]
        assert f'"{member["id"]}" -> "{result.id}";' in dot
    assert "subgraph cluster_1" in dot

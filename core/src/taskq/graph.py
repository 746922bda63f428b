"""A workflow's tree with each task's state: what ``taskq graph RESULT_ID`` shows.

When a chain, group or chord is sent, the client records its shape in the result backend
under the id its ``apply_async`` returned (:meth:`ResultBackend.save_workflow`): the kind
of each part and the id of every task and group, fixed before anything is sent.
:func:`workflow_tree` reads that shape back and fills in each task's state from the
result records; the tasks a task sent while it ran (its stored ``children``) hang below
it. An id with no recorded shape is shown as what it is: a saved group, or one task.

Each node is a plain dict (so ``--json`` prints it as it is):

* ``{"kind": "task", "id", "task", "state", "result", "children": [...]}``
* ``{"kind": "chain", "steps": [...], "state"}``
* ``{"kind": "group", "id", "members": [...], "state", "ended", "total"}``
* ``{"kind": "chord", "header": <group>, "body": <node>, "state"}``
* ``{"kind": "chunks", "task", "items", "state"}`` (its tasks are made when it is sent)
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from taskq import states
from taskq.errors import SerializationError
from taskq.result import _child_id

if TYPE_CHECKING:
    from taskq.app import App

#: Most tasks one tree holds: the tasks a task sent (and theirs) are followed up to this.
MAX_TASKS = 10_000
#: Deepest nesting of a recorded shape that is read (workflows inside workflows).
MAX_DEPTH = 100
# How many result records one read of the backend asks for.
READ_BATCH = 500
# Longest result shown on a line of the text tree, in characters.
RESULT_SHOWN = 60
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = RESULT_SHOWN

Node = dict[str, object]


def workflow_tree(result_id: str, app: App, *, children: bool = True) -> Node:
    """The tree of the workflow whose result is ``result_id``, with every task's state.

    ``result_id`` is the id ``apply_async`` returned: a chain's (its last step's), a
    group's, a chord's (its body's), or any task's. ``children``: also show the tasks each
    task sent while it ran, and theirs (up to :data:`MAX_TASKS` in all).
    """
    backend = app.backend
    tree = backend.restore_workflow(result_id)
    if tree is not None:
        tree = _checked(tree, result_id)
    else:
        try:
            members = backend.restore_group(result_id)
        except NotImplementedError:
            members = None
        if members is not None:
            tree = {"kind": "group", "id": result_id, "members": [_task(member) for member in members]}
        else:
            tree = _task(result_id)
    known = {cast(str, node["id"]) for node in _tasks(tree)}
    level = list(_tasks(tree))
    while level:
        _fill(app, level)
        if not children:
            break
        following: list[Node] = []
        for node in level:
            for child_id in cast("list[str]", node.pop("_children", [])):
                if child_id in known:
                    continue  # a part of the workflow shown already (a chain's next step, say)
                if len(known) >= MAX_TASKS:
                    node["truncated"] = True
                    break
                known.add(child_id)
                child = _task(child_id)
                cast("list[Node]", node.setdefault("children", [])).append(child)
                following.append(child)
        level = following
    for node in _tasks(tree):
        node.pop("_children", None)
    _settle(tree)
    return tree


def _checked(tree: object, result_id: str) -> Node:
    """A copy of the stored shape ``tree``, each node checked: anyone can write to a result store."""
    count = 0

    def check(node: object, depth: int, where: str) -> Node:
        nonlocal count
        count += 1
        if depth > MAX_DEPTH or count > MAX_TASKS * 2:
            raise _malformed(result_id, f"{where} is nested deeper than {MAX_DEPTH} levels or has too many parts")
        if not isinstance(node, dict):
            raise _malformed(result_id, f"{where} is {type(node).__name__}, not a mapping")
        kind = node.get("kind")
        if not isinstance(kind, str):
            raise _malformed(result_id, f"{where} has no text kind")
        ident = node.get("id")
        if kind in ("task", "group") and not isinstance(ident, str):
            raise _malformed(result_id, f"{where} ({kind}) has no text id")
        if kind == "task":
            name = node.get("task")
            return {"kind": kind, "id": ident} | ({"task": name} if isinstance(name, str) else {})
        if kind == "chunks":
            return {"kind": kind, "task": str(node.get("task")), "items": node.get("items")}
        parts_key = {"chain": "steps", "group": "members"}.get(kind)
        if parts_key is not None:
            parts = node.get(parts_key)
            if not isinstance(parts, list):
                raise _malformed(result_id, f"{where} ({kind}) has no list of {parts_key}")
            checked = [check(part, depth + 1, f"{where}.{parts_key}[{i}]") for i, part in enumerate(parts)]
            return {"kind": kind, parts_key: checked} | ({"id": ident} if kind == "group" else {})
        if kind == "chord":
            header = check(node.get("header"), depth + 1, f"{where}.header")
            if header["kind"] != "group":
                raise _malformed(result_id, f"{where}.header is a {header['kind']}, not a group")
            return {"kind": kind, "header": header, "body": check(node.get("body"), depth + 1, f"{where}.body")}
        raise _malformed(result_id, f"{where} is of the unknown kind {_REPR.repr(kind)}")

    return check(tree, 0, "the workflow")


def _malformed(result_id: str, what: str) -> SerializationError:
    return SerializationError(
        f"the shape recorded for the workflow {result_id} is malformed: {what}; it was not written by taskq "
        f"(or was changed since). Show a task of it by its own id instead"
    )


def _task(task_id: str) -> Node:
    return {"kind": "task", "id": task_id}


def _tasks(node: Node) -> Iterator[Node]:
    """Every task node of ``node``, depth first, the tasks they sent included."""
    kind = node.get("kind")
    if kind == "task":
        yield node
        for child in cast("list[Node]", node.get("children") or []):
            yield from _tasks(child)
    for part in _parts(node):
        yield from _tasks(part)


def _parts(node: Node) -> list[Node]:
    kind = node.get("kind")
    if kind == "chain":
        return list(cast("list[Node]", node.get("steps") or []))
    if kind == "group":
        return list(cast("list[Node]", node.get("members") or []))
    if kind == "chord":
        return [cast(Node, node["header"]), cast(Node, node["body"])]
    return []


def _fill(app: App, nodes: list[Node]) -> None:
    """Read the result records of ``nodes`` (tasks) and put their state, name and result in."""
    backend = app.backend
    for start in range(0, len(nodes), READ_BATCH):
        batch = nodes[start : start + READ_BATCH]
        metas = backend.get_many([cast(str, node["id"]) for node in batch])
        for node in batch:
            meta = metas.get(cast(str, node["id"])) or {}
            node["state"] = str(meta.get("status") or states.PENDING)
            if "task" not in node and isinstance(meta.get("name"), str):
                node["task"] = meta["name"]
            if node["state"] in states.READY_STATES:
                node["result"] = meta.get("result")
            sent = [_child_id(entry) for entry in cast("list[object]", meta.get("children") or [])]
            node["_children"] = [child for child in sent if child]


def _settle(node: Node) -> str:
    """Give each workflow part the state of its whole (set on ``node``; returned)."""
    kind = node.get("kind")
    if kind == "task":
        return cast(str, node.get("state") or states.PENDING)
    if kind == "chunks":
        node["state"] = node.get("state", states.PENDING)
        return cast(str, node["state"])
    found = [_settle(part) for part in _parts(node)]
    if kind == "group":
        node["ended"] = sum(state in states.READY_STATES for state in found)
        node["total"] = len(found)
    state = _sequence_state(found) if kind in ("chain", "chord") else _together_state(found)
    node["state"] = state
    return state


def _together_state(found: list[str]) -> str:
    """Parts run side by side: failed if one failed, done when all are, pending until one starts."""
    if any(state in states.PROPAGATE_STATES for state in found):
        return states.FAILURE
    if all(state == states.SUCCESS for state in found):
        return states.SUCCESS
    if all(state == states.PENDING for state in found):
        return states.PENDING
    return states.STARTED


def _sequence_state(found: list[str]) -> str:
    """Parts run one after another: failed if one failed, done when the last is."""
    if any(state in states.PROPAGATE_STATES for state in found):
        return states.FAILURE
    if found and found[-1] == states.SUCCESS:
        return states.SUCCESS
    if all(state == states.PENDING for state in found):
        return states.PENDING
    return states.STARTED


# ---- Showing a tree ---------------------------------------------------------------------


def render_text(tree: Node) -> str:
    """The tree as indented lines, one per node: kind, name and id, state, result."""
    lines: list[str] = []
    _text(tree, "", "", lines)
    return "\n".join(lines)


def _label(node: Node) -> str:
    kind = node.get("kind")
    state = node.get("state", states.PENDING)
    if kind == "task":
        name = node.get("task") or "task"
        label = f"{name}[{node['id']}]  {state}"
        if "result" in node:
            label += f"  {_REPR.repr(node['result'])}"
        if node.get("truncated"):
            label += f"  (more tasks it sent are not shown: over {MAX_TASKS})"
        return label
    if kind == "group":
        return f"group[{node.get('id')}]  {state}  ({node.get('ended')} of {node.get('total')} ended)"
    if kind == "chain":
        return f"chain  {state}  ({len(_parts(node))} steps)"
    if kind == "chord":
        return f"chord  {state}"
    if kind == "chunks":
        return f"chunks of {node.get('task')} over {node.get('items')} items  {state}"
    return f"{kind}  {state}"


def _text(node: Node, first: str, rest: str, lines: list[str]) -> None:
    lines.append(first + _label(node))
    below: list[tuple[str, Node]]
    if node.get("kind") == "chord":
        below = [("header: ", cast(Node, node["header"])), ("body: ", cast(Node, node["body"]))]
    else:
        below = [("", part) for part in _parts(node)]
        below += [("sent: ", child) for child in cast("list[Node]", node.get("children") or [])]
    for index, (prefix, part) in enumerate(below):
        last = index == len(below) - 1
        _text(part, rest + ("└─ " if last else "├─ ") + prefix, rest + ("   " if last else "│  "), lines)


# Graphviz colours by state.
_COLOURS = {
    states.SUCCESS: "palegreen",
    states.FAILURE: "salmon",
    states.REVOKED: "grey",
    states.STARTED: "lightblue",
    states.RETRY: "khaki",
}


def render_dot(tree: Node) -> str:
    """The tree as a Graphviz digraph: tasks are boxes coloured by state, groups are
    clusters, an arrow goes from each task to what runs after it."""
    out = ["digraph workflow {", "  rankdir=LR;", '  node [shape=box, style=filled, fillcolor=white, fontname="sans"];']
    clusters = iter(range(1, 1_000_000))

    def task_line(node: Node) -> str:
        label = f"{node.get('task') or 'task'}\n{node['id']}\n{node.get('state', states.PENDING)}"
        colour = _COLOURS.get(cast(str, node.get("state")), "white")
        return f"  {json.dumps(node['id'])} [label={json.dumps(label)}, fillcolor={colour}];"

    def emit(node: Node) -> tuple[list[str], list[str]]:
        """Write ``node``; return the ids of its first and its last tasks (to draw arrows)."""
        kind = node.get("kind")
        if kind == "task":
            out.append(task_line(node))
            for child in cast("list[Node]", node.get("children") or []):
                child_firsts, _ = emit(child)
                out.extend(f"  {json.dumps(node['id'])} -> {json.dumps(f)} [style=dashed];" for f in child_firsts)
            return [cast(str, node["id"])], [cast(str, node["id"])]
        firsts: list[str] = []
        lasts: list[str] = []
        if kind == "chain":
            for step in _parts(node):
                step_firsts, step_lasts = emit(step)
                out.extend(f"  {json.dumps(a)} -> {json.dumps(b)};" for a in lasts for b in step_firsts)
                firsts = firsts or step_firsts
                lasts = step_lasts
            return firsts, lasts
        if kind == "chord":
            header_firsts, header_lasts = emit(cast(Node, node["header"]))
            body_firsts, body_lasts = emit(cast(Node, node["body"]))
            out.extend(f"  {json.dumps(a)} -> {json.dumps(b)};" for a in header_lasts for b in body_firsts)
            return header_firsts, body_lasts
        if kind == "group":
            title = f"group {node.get('id')}: {node.get('state')}"
            out.append(f"  subgraph cluster_{next(clusters)} {{")
            out.append(f"    label={json.dumps(title)};")
            for member in _parts(node):
                member_firsts, member_lasts = emit(member)
                firsts += member_firsts
                lasts += member_lasts
            out.append("  }")
            return firsts, lasts
        name = f"{kind}-{next(clusters)}"
        out.append(f"  {json.dumps(name)} [label={json.dumps(_label(node))}];")
        return [name], [name]

    emit(tree)
    out.append("}")
    return "\n".join(out)


__all__ = ["MAX_TASKS", "render_dot", "render_text", "workflow_tree"]

"""Workflows and the results API on a real in-process worker: chain, group, chord, children."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable

import pytest

from taskq import App, GroupResult, chain, chord, group, states
from taskq.canvas import Signature
from taskq.errors import (
    ChordError,
    NotRegisteredError,
    Reject,
    ResultNotEnabledError,
    SerializationError,
    TaskRevokedError,
    TimeoutError,
)

TIMEOUT = 10.0
# The ids the errback task was given, in the order it was called.
ERRBACKS: list[str] = []


@pytest.fixture
def math_app(memory_url: str) -> App:
    app = App("canvas", broker=memory_url, read_config=False)

    @app.task(name="math.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="math.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="math.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="math.boom")
    def boom(x: int) -> int:
        raise ValueError(f"boom {x}")

    @app.task(name="math.failed")
    def failed(task_id: str) -> None:  # an errback: it is given the failed task's id
        ERRBACKS.append(task_id)

    @app.task(name="math.fanout", bind=True)
    def fanout(self, n: int) -> int:  # type: ignore[no-untyped-def]
        for i in range(n):
            add.delay(i, i)
        return n

    return app


def test_a_chain_passes_each_result_to_the_next_task(math_app: App, start_worker: Callable[..., object]) -> None:
    add, mul = math_app.tasks["math.add"], math_app.tasks["math.mul"]
    start_worker(math_app)
    result = chain(add.s(2, 2), mul.s(10), add.s(1)).apply_async()
    assert result.get(timeout=TIMEOUT) == 41
    assert result.parent is not None
    assert result.parent.get(timeout=TIMEOUT) == 40  # type: ignore[union-attr]


def test_the_pipe_operator_builds_a_chain(math_app: App, start_worker: Callable[..., object]) -> None:
    add, mul = math_app.tasks["math.add"], math_app.tasks["math.mul"]
    start_worker(math_app)
    assert (add.s(1, 1) | mul.s(5)).delay().get(timeout=TIMEOUT) == 10


def test_an_immutable_signature_ignores_the_previous_result(math_app: App, start_worker: Callable[..., object]) -> None:
    add = math_app.tasks["math.add"]
    start_worker(math_app)
    assert chain(add.s(1, 1), add.si(5, 5)).apply_async().get(timeout=TIMEOUT) == 10


def test_a_group_runs_every_task_and_joins_in_order(math_app: App, start_worker: Callable[..., object]) -> None:
    add = math_app.tasks["math.add"]
    start_worker(math_app)
    result = group(add.s(i, i) for i in range(10)).apply_async()
    assert isinstance(result, GroupResult)
    assert result.join(timeout=TIMEOUT) == [i + i for i in range(10)]
    assert result.completed_count() == 10
    assert result.ready() and result.successful()


def test_a_saved_group_result_can_be_restored_by_id(math_app: App, start_worker: Callable[..., object]) -> None:
    add = math_app.tasks["math.add"]
    start_worker(math_app)
    sent = group(add.s(i, 1) for i in range(3)).apply_async()
    restored = GroupResult.restore(sent.id, app=math_app)
    assert restored is not None
    assert restored.ids == sent.ids
    assert restored.join(timeout=TIMEOUT) == [1, 2, 3]


def test_join_re_raises_the_first_failure_or_returns_it(math_app: App, start_worker: Callable[..., object]) -> None:
    add, boom = math_app.tasks["math.add"], math_app.tasks["math.boom"]
    start_worker(math_app)
    result = group([add.s(1, 1), boom.s(7)]).apply_async()
    with pytest.raises(ValueError, match="boom 7"):
        result.join(timeout=TIMEOUT)
    values = result.join(timeout=TIMEOUT, propagate=False)
    assert values[0] == 2
    assert isinstance(values[1], ValueError)
    assert result.failed()


def test_join_gives_up_at_its_timeout(math_app: App) -> None:
    add = math_app.tasks["math.add"]
    result = group(add.s(1, 1) for _ in range(2)).apply_async()
    with pytest.raises(TimeoutError, match="2 of 2"):
        result.join(timeout=0.2)


def test_a_chord_runs_its_body_with_every_header_result(math_app: App, start_worker: Callable[..., object]) -> None:
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    result = chord((add.s(i, i) for i in range(10)), tsum.s()).apply_async()
    assert result.get(timeout=TIMEOUT) == sum(i + i for i in range(10))


def test_a_chord_with_a_failed_header_fails_its_body(math_app: App, start_worker: Callable[..., object]) -> None:
    add, boom, tsum = math_app.tasks["math.add"], math_app.tasks["math.boom"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    result = chord([add.s(1, 1), boom.s(3)], tsum.s()).apply_async()
    with pytest.raises(ChordError, match="boom 3"):
        result.get(timeout=TIMEOUT)


@pytest.mark.parametrize(("last", "args"), [("math.add", (1, 1)), ("math.boom", (1,))], ids=["sent", "failed"])
def test_a_chord_s_body_sent_or_failed_is_marked_sent_in_the_backend(
    math_app: App,
    start_worker: Callable[..., object],
    wait_until: Callable[..., None],
    last: str,
    args: tuple[int, ...],
) -> None:
    """Until it is, a header task run again would send the body again (ResultBackend.count_chord_part)."""
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    result = chord([add.s(1, 1), math_app.tasks[last].s(*args)], tsum.s()).apply_async()
    result.get(timeout=TIMEOUT, propagate=False)
    group_id = result.parent.id  # type: ignore[union-attr]
    wait_until(lambda: math_app.backend.read_chord_counter(f"{group_id}.sent") == 1, "the body marked sent")


def test_a_group_followed_by_a_task_in_a_chain_is_a_chord(math_app: App, start_worker: Callable[..., object]) -> None:
    add, tsum, mul = math_app.tasks["math.add"], math_app.tasks["math.tsum"], math_app.tasks["math.mul"]
    start_worker(math_app)
    flow = chain(group(add.s(i, 0) for i in range(4)), tsum.s(), mul.s(2))
    assert flow.apply_async().get(timeout=TIMEOUT) == 12


def test_tasks_sent_by_a_task_are_its_children(math_app: App, start_worker: Callable[..., object]) -> None:
    fanout = math_app.tasks["math.fanout"]
    start_worker(math_app)
    parent = fanout.delay(3)
    assert parent.get(timeout=TIMEOUT) == 3
    children = parent.children
    assert len(children) == 3
    assert sorted(c.get(timeout=TIMEOUT) for c in children) == [0, 2, 4]


def test_then_calls_back_with_the_value(math_app: App, start_worker: Callable[..., object]) -> None:
    add = math_app.tasks["math.add"]
    start_worker(math_app)
    seen: list[object] = []
    done = threading.Event()
    add.delay(20, 22).then(lambda value: (seen.append(value), done.set()))
    assert done.wait(TIMEOUT)
    assert seen == [42]


def test_an_asyncio_client_sends_and_awaits_results(math_app: App, start_worker: Callable[..., object]) -> None:
    add = math_app.tasks["math.add"]
    start_worker(math_app)

    async def client() -> list[object]:
        first = await add.delay_async(1, 2)
        second = await add.apply_async_async((3, 4), countdown=0.1)
        return [await first, await second.get_async(timeout=TIMEOUT)]

    assert asyncio.run(client()) == [3, 7]


def test_a_result_set_is_awaitable(math_app: App, start_worker: Callable[..., object]) -> None:
    add = math_app.tasks["math.add"]
    start_worker(math_app)

    async def client() -> list[object]:
        return await group(add.s(i, 1) for i in range(3)).apply_async()

    assert asyncio.run(client()) == [1, 2, 3]


def test_track_started_records_started_while_running(memory_url: str, start_worker: Callable[..., object]) -> None:
    app = App("started", broker=memory_url, read_config=False, task_track_started=True)
    release = threading.Event()

    @app.task
    def hold() -> str:
        release.wait(TIMEOUT)
        return "done"

    start_worker(app)
    result = hold.delay()
    deadline_ok = False
    for _ in range(2000):
        if result.state == states.STARTED:
            deadline_ok = True
            break
        threading.Event().wait(0.005)
    release.set()
    assert deadline_ok, "STARTED was never recorded"
    assert result.get(timeout=TIMEOUT) == "done"


# ---- Workflows inside workflows: the member's result is its last step's -------------------


def test_a_group_of_chains_gives_each_chain_s_last_result(math_app: App, start_worker: Callable[..., object]) -> None:
    add, mul = math_app.tasks["math.add"], math_app.tasks["math.mul"]
    start_worker(math_app)
    result = group(chain(add.s(1, 1), mul.s(10)), chain(add.s(1, 2), mul.s(10))).apply_async()
    assert result.get(timeout=TIMEOUT) == [20, 30]  # was [2, 3]: the first steps' results


def test_a_chord_waits_for_the_last_step_of_a_chain_in_its_header(
    math_app: App, start_worker: Callable[..., object]
) -> None:
    add, mul, tsum = math_app.tasks["math.add"], math_app.tasks["math.mul"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    result = chord([chain(add.s(1, 1), mul.s(10)), add.s(5, 5)], tsum.s()).apply_async()
    assert result.get(timeout=TIMEOUT) == 30  # was 12: the body fired after the chain's first step


def test_a_chord_in_a_chord_s_header_gives_its_body_s_result(
    math_app: App, start_worker: Callable[..., object]
) -> None:
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    inner = chord([add.s(1, 1), add.s(2, 2)], tsum.s())
    result = chord([inner, add.s(5, 5)], tsum.s()).apply_async()  # raised TypeError at send
    assert result.get(timeout=TIMEOUT) == 16


def test_a_chord_in_a_group_gives_its_body_s_result(math_app: App, start_worker: Callable[..., object]) -> None:
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    result = group(chord([add.s(1, 1), add.s(2, 2)], tsum.s()), add.s(1, 0)).apply_async()
    assert result.get(timeout=TIMEOUT) == [6, 1]


def test_a_chain_ending_in_a_group_returns_the_group_s_results(
    math_app: App, start_worker: Callable[..., object]
) -> None:
    add, mul = math_app.tasks["math.add"], math_app.tasks["math.mul"]
    start_worker(math_app)
    result = chain(add.s(1, 1), group(mul.s(10), mul.s(100))).apply_async()
    assert isinstance(result, GroupResult)
    assert result.get(timeout=TIMEOUT) == [20, 200]  # was PENDING for ever
    assert result.parent is not None and result.parent.get(timeout=TIMEOUT) == 2


def test_a_chain_ending_in_a_chord_inside_a_group(math_app: App, start_worker: Callable[..., object]) -> None:
    add, mul, tsum = math_app.tasks["math.add"], math_app.tasks["math.mul"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    flow = chain(add.s(1, 1), chord([mul.s(2), mul.s(3)], tsum.s()))
    assert group(flow, add.s(0, 1)).apply_async().get(timeout=TIMEOUT) == [10, 1]


@pytest.mark.parametrize("member", ["group", "chain ending in a group"])
def test_a_group_inside_a_group_or_a_chord_header_gives_its_list(
    math_app: App, start_worker: Callable[..., object], member: str
) -> None:
    add, mul = math_app.tasks["math.add"], math_app.tasks["math.mul"]

    @math_app.task(name="math.echo")
    def echo(values: list[object]) -> list[object]:
        return values

    inner = group(add.s(1, 1), add.s(2, 2))
    if member != "group":
        inner = chain(add.s(0, 1), group(mul.s(2), mul.s(4)))  # [2, 4] too
    start_worker(math_app)
    assert group(inner, add.s(1, 1)).apply_async().get(timeout=TIMEOUT) == [[2, 4], 2]
    assert chord([inner, add.s(1, 1)], echo.s()).apply_async().get(timeout=TIMEOUT) == [[2, 4], 2]
    assert group(group(inner)).apply_async().get(timeout=TIMEOUT) == [[[2, 4]]]


def test_a_group_inside_a_group_without_a_chord_backend_is_refused_before_anything_is_sent(
    memory_url: str,
) -> None:
    app = App("nochords", broker=memory_url, backend="disabled", read_config=False)

    @app.task(name="nochords.add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ResultNotEnabledError, match="needs a result backend"):
        group(group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)).apply_async()
    assert app.transport.depth("taskq") == 0


# ---- Failures in workflows: raised by get(), errbacks called once, nothing left waiting ---


@pytest.fixture
def errbacks() -> list[str]:
    ERRBACKS.clear()
    return ERRBACKS


def test_a_chain_s_errback_is_called_for_a_later_step_and_get_raises(
    math_app: App, start_worker: Callable[..., object], errbacks: list[str], wait_until: Callable[..., None]
) -> None:
    add, boom, failed = math_app.tasks["math.add"], math_app.tasks["math.boom"], math_app.tasks["math.failed"]
    start_worker(math_app)
    flow = chain(add.s(1, 1), boom.s(), add.s(1))
    flow.link_error(failed.s())
    result = flow.apply_async()
    with pytest.raises(ValueError, match="boom 2"):
        result.get(timeout=TIMEOUT)  # hung: the last step never ran and nothing said so
    failing = result.parent
    assert failing is not None
    wait_until(lambda: errbacks == [failing.id], "the errback, once, with the failed step's id")


def test_a_chord_s_errback_is_called_when_a_header_task_fails(
    math_app: App, start_worker: Callable[..., object], errbacks: list[str], wait_until: Callable[..., None]
) -> None:
    add, boom, tsum = math_app.tasks["math.add"], math_app.tasks["math.boom"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    flow = chord([add.s(1, 1), boom.s(3)], tsum.s())
    flow.link_error(math_app.tasks["math.failed"].s())
    result = flow.apply_async()
    with pytest.raises(ChordError, match="boom 3"):
        result.get(timeout=TIMEOUT)
    wait_until(lambda: errbacks == [result.id], "the errback, once, with the body's id")


def test_a_failed_inner_chord_fails_the_outer_one(math_app: App, start_worker: Callable[..., object]) -> None:
    add, boom, tsum = math_app.tasks["math.add"], math_app.tasks["math.boom"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    inner = chord([add.s(1, 1), boom.s(3)], tsum.s())
    result = chord([inner, add.s(5, 5)], tsum.s()).apply_async()
    with pytest.raises(ChordError):
        result.get(timeout=TIMEOUT)


def test_a_failed_step_of_a_chain_in_a_chord_header_fails_the_chord(
    math_app: App, start_worker: Callable[..., object]
) -> None:
    add, boom, tsum = math_app.tasks["math.add"], math_app.tasks["math.boom"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    header = [chain(boom.s(1), add.s(1)), add.s(5, 5)]
    with pytest.raises(ChordError, match="boom 1"):
        chord(header, tsum.s()).apply_async().get(timeout=TIMEOUT)
    members = group(chain(boom.s(1), add.s(1)), add.s(1, 1)).apply_async()
    with pytest.raises(ValueError, match="boom 1"):
        members.get(timeout=TIMEOUT)


# ---- map, starmap, chunks --------------------------------------------------------------------


def test_map_and_starmap_run_in_one_task(math_app: App, start_worker: Callable[..., object]) -> None:
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    assert tsum.map([[1, 2], [3, 4]]).delay().get(timeout=TIMEOUT) == [3, 7]
    assert add.starmap(zip(range(5), range(5), strict=True)).delay().get(timeout=TIMEOUT) == [0, 2, 4, 6, 8]


def test_chunks_split_the_calls_into_tasks_of_n(math_app: App, start_worker: Callable[..., object]) -> None:
    add = math_app.tasks["math.add"]
    start_worker(math_app)
    calls = list(zip(range(10), range(10), strict=True))
    parts = add.chunks(calls, 4)
    assert [len(member.kwargs["it"]) for member in parts.group().tasks] == [4, 4, 2]  # type: ignore[arg-type]
    result = parts.apply_async()
    assert result.get(timeout=TIMEOUT) == [[0, 2, 4, 6], [8, 10, 12, 14], [16, 18]]
    with pytest.raises(ValueError, match="whole number of calls per chunk"):
        add.chunks(calls, 0)


def test_a_chunks_group_can_head_a_chord(math_app: App, start_worker: Callable[..., object]) -> None:
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]

    @math_app.task(name="math.flatten_sum")
    def flatten_sum(parts: list[list[int]]) -> int:
        return sum(sum(part) for part in parts)

    start_worker(math_app)
    header = add.chunks([(i, i) for i in range(6)], 2).group()
    assert chord(header, flatten_sum.s()).apply_async().get(timeout=TIMEOUT) == 30
    assert tsum.map([[1], [2, 3]]).apply_async().get(timeout=TIMEOUT) == [1, 5]


def test_a_map_of_a_task_the_worker_does_not_know_fails_naming_it(
    math_app: App, start_worker: Callable[..., object]
) -> None:
    from taskq.canvas import Signature
    from taskq.errors import NotRegisteredError

    start_worker(math_app)
    flow = Signature("celery.map", (), {"task": Signature("math.nowhere"), "it": [1]}, app=math_app)
    with pytest.raises(NotRegisteredError, match=r"'math\.nowhere'"):
        flow.delay().get(timeout=TIMEOUT)


def test_an_errback_taking_request_exc_traceback_is_called_in_the_worker_as_celery_5_does(
    math_app: App, start_worker: Callable[..., object], errbacks: list[str], wait_until: Callable[..., None]
) -> None:
    boom = math_app.tasks["math.boom"]
    seen: list[tuple[object, ...]] = []

    @math_app.task(name="math.on_error")
    def on_error(request: object, exc: BaseException, traceback: str, label: str) -> None:
        seen.append((request.id, request.task, request.args, repr(exc), "ValueError: boom 4" in traceback, label))  # type: ignore[attr-defined]

    start_worker(math_app)
    result = boom.apply_async((4,), link_error=[on_error.s("new style"), math_app.tasks["math.failed"].s()])
    with pytest.raises(ValueError, match="boom 4"):
        result.get(timeout=TIMEOUT)
    wait_until(lambda: seen and errbacks, "both errbacks")
    assert seen == [(result.id, "math.boom", [4], "ValueError('boom 4')", True, "new style")]
    assert errbacks == [result.id]  # the old style: sent as a task with the failed task's id


# ---- Task.replace ------------------------------------------------------------------------------


@pytest.fixture
def replacing(math_app: App) -> App:
    add, mul = math_app.tasks["math.add"], math_app.tasks["math.mul"]

    @math_app.task(name="math.route", bind=True)
    def route(self, x: int, how: str) -> None:  # type: ignore[no-untyped-def]
        if how == "task":
            raise self.replace(add.s(x, 1))
        if how == "chain":
            raise self.replace(chain(add.s(x, 1), mul.s(10)))
        raise self.replace(group(add.s(x, 1), mul.s(x, 10)))

    return math_app


@pytest.mark.parametrize(("how", "expected"), [("task", 2), ("chain", 20), ("group", [2, 10])])
def test_a_replaced_task_s_result_is_its_replacement_s(
    replacing: App, start_worker: Callable[..., object], how: str, expected: object
) -> None:
    route = replacing.tasks["math.route"]
    start_worker(replacing)
    assert route.delay(1, how).get(timeout=TIMEOUT) == expected


def test_what_followed_a_replaced_task_follows_its_replacement(
    replacing: App, start_worker: Callable[..., object]
) -> None:
    route, mul, tsum, add = (replacing.tasks[name] for name in ("math.route", "math.mul", "math.tsum", "math.add"))
    start_worker(replacing)
    assert chain(route.s(1, "chain"), mul.s(2)).apply_async().get(timeout=TIMEOUT) == 40
    assert chord([route.s(1, "task"), add.s(1, 1)], tsum.s()).apply_async().get(timeout=TIMEOUT) == 4
    assert group(route.s(1, "group"), add.s(0, 1)).apply_async().get(timeout=TIMEOUT) == [[2, 10], 1]


def test_replace_outside_a_worker_says_so(replacing: App) -> None:
    route = replacing.tasks["math.route"]
    with pytest.raises(RuntimeError, match="is for a task a worker runs"):
        route(1, "task")


def test_on_error_links_an_errback_and_returns_the_signature(
    math_app: App, start_worker: Callable[..., object], errbacks: list[str], wait_until: Callable[..., None]
) -> None:
    add, boom, failed = math_app.tasks["math.add"], math_app.tasks["math.boom"], math_app.tasks["math.failed"]
    flow = (add.s(1, 1) | boom.s()).on_error(failed.s())
    assert isinstance(flow, chain)
    start_worker(math_app)
    result = flow.delay()
    with pytest.raises(ValueError, match="boom 2"):
        result.get(timeout=TIMEOUT)
    wait_until(lambda: errbacks == [result.id], "the errback, with the failed step's id")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"args": [1]}, "task is None"),
        ({"task": 5}, "task is 5"),
        ({"task": "math.add", "args": "12"}, "args is '12'"),
        ({"task": "math.add", "kwargs": {1: 2}}, "kwargs is {1: 2}"),
        ({"task": "math.add", "options": []}, "options is []"),
    ],
)
def test_a_signature_that_does_not_decode_is_a_clear_error(data: dict[str, object], named: str) -> None:
    from taskq.canvas import Signature

    with pytest.raises(TypeError, match=f"not a signature .*{re.escape(named)}"):
        Signature.from_dict(data)
    with pytest.raises(TypeError, match="not a signature"):
        chain(data, data)


def test_a_workflow_uses_the_app_of_its_signatures_not_the_current_one(
    math_app: App, start_worker: Callable[..., object], memory_url: str
) -> None:
    """Built from another app's tasks, a chord saved its group and read its result on the
    current app: its result stayed PENDING although the body ran."""
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    App("elsewhere", broker=f"{memory_url}-other", backend="disabled", read_config=False)  # now the current app
    assert chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async().get(timeout=TIMEOUT) == 6
    assert chain(add.s(1, 1), add.s(1)).apply_async().get(timeout=TIMEOUT) == 3
    assert group(add.s(1, 1), add.s(2, 2)).apply_async().get(timeout=TIMEOUT) == [2, 4]


def test_a_group_sent_twice_is_two_groups(math_app: App, start_worker: Callable[..., object]) -> None:
    add = math_app.tasks["math.add"]
    start_worker(math_app)
    members = group(add.s(1, 1), add.s(2, 2))
    first, second = members.apply_async(), members.apply_async()
    assert first.id != second.id and set(first.ids).isdisjoint(second.ids)
    assert first.get(timeout=TIMEOUT) == second.get(timeout=TIMEOUT) == [2, 4]


# ---- A task that never runs to its end: what follows it ends too, nothing waits for ever --


def test_an_unknown_task_in_a_chord_header_fails_the_chord(math_app: App, start_worker: Callable[..., object]) -> None:
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    result = chord([add.s(1, 1), Signature("math.nowhere", (1,), app=math_app)], tsum.s()).apply_async()
    with pytest.raises(ChordError, match="not registered"):
        result.get(timeout=TIMEOUT)  # hung: the dead-lettered header task never counted


def test_an_unknown_step_in_a_chain_fails_the_rest_and_calls_its_errback(
    math_app: App, start_worker: Callable[..., object], errbacks: list[str], wait_until: Callable[..., None]
) -> None:
    add = math_app.tasks["math.add"]
    start_worker(math_app)
    flow = chain(add.s(1, 1), Signature("math.nowhere", app=math_app), add.s(1))
    flow.link_error(math_app.tasks["math.failed"].s())
    result = flow.apply_async()
    with pytest.raises(NotRegisteredError, match=r"math\.nowhere"):
        result.get(timeout=TIMEOUT)  # hung: the step after the unknown one was never told
    assert result.parent is not None
    wait_until(lambda: errbacks == [result.parent.id], "the errback, once, with the unknown step's id")  # type: ignore[union-attr]


def test_a_revoked_step_revokes_the_rest_of_its_chain(math_app: App, start_worker: Callable[..., object]) -> None:
    add, mul = math_app.tasks["math.add"], math_app.tasks["math.mul"]
    flow = chain(add.s(1, 1), mul.s(10), add.s(1))
    result = flow.apply_async()
    middle = result.parent
    assert middle is not None
    middle.revoke()
    start_worker(math_app)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=TIMEOUT)
    assert result.state == states.REVOKED
    assert result.parent.parent.get(timeout=TIMEOUT) == 2  # type: ignore[union-attr]


def test_a_revoked_or_expired_header_task_fails_the_chord(math_app: App, start_worker: Callable[..., object]) -> None:
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    revoked = chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async()
    assert revoked.parent is not None
    revoked.parent.results[1].revoke()  # type: ignore[union-attr]
    expired = chord([add.s(1, 1), add.s(2, 2).set(expires=-1.0)], tsum.s()).apply_async()
    start_worker(math_app)
    for result in (revoked, expired):
        with pytest.raises(ChordError, match="ended REVOKED"):
            result.get(timeout=TIMEOUT)


def test_a_header_task_that_rejects_its_message_fails_the_chord(
    math_app: App, start_worker: Callable[..., object]
) -> None:
    @math_app.task(name="math.refuse")
    def refuse(x: int) -> None:
        raise Reject("not for me", requeue=False)

    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    start_worker(math_app)
    result = chord([add.s(1, 1), refuse.s(2)], tsum.s()).apply_async()
    with pytest.raises(ChordError, match="not for me"):
        result.get(timeout=TIMEOUT)


# ---- A workflow is sent whole or not at all ------------------------------------------------


@pytest.mark.parametrize("kind", ["group", "chord", "group in a chord"])
def test_a_workflow_with_a_part_that_cannot_be_encoded_sends_nothing(math_app: App, kind: str) -> None:
    add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
    members = [add.s(1, 1), add.s(2, 2), add.s(object(), 3)]
    flow = {
        "group": group(members),
        "chord": chord(members, tsum.s()),
        "group in a chord": chord([add.s(1, 1), group(members)], tsum.s()),
    }[kind]
    with pytest.raises(SerializationError, match=r"cannot send task math\.add") as raised:
        flow.apply_async()
    assert any("None of this workflow's tasks was sent" in note for note in raised.value.__notes__)
    assert math_app.transport.depth("taskq") == 0  # sent in part, a chord's header would never complete


def test_a_workflow_s_parts_are_published_together_and_each_announced(
    math_app: App, start_worker: Callable[..., object]
) -> None:
    published: list[str] = []
    sizes: list[int] = []
    transport = math_app.transport
    original = transport.publish_many

    def publish_many(items: object) -> None:
        listed = list(items)  # type: ignore[call-overload]
        sizes.append(len(listed))
        original(listed)

    transport.publish_many = publish_many  # type: ignore[method-assign]
    from taskq import signals

    @signals.after_task_publish.connect
    def announced(sender: object = None, headers: object = None, **_: object) -> None:
        published.append(str(sender))

    try:
        add, tsum = math_app.tasks["math.add"], math_app.tasks["math.tsum"]
        result = chord([add.s(i, i) for i in range(5)], tsum.s()).apply_async()
        assert sizes == [5]  # one publish_many for the whole header
        assert published == ["math.add"] * 5
        start_worker(math_app)
        assert result.get(timeout=TIMEOUT) == 20
    finally:
        signals.after_task_publish.disconnect(announced)

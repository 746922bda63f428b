"""Stamping: Celery's visitor API, stamps on the wire, ``self.request.stamps``, revoke by stamp."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from taskq import App, chain, chord, group, states
from taskq._protocol import build_headers, check_headers, decode, encode
from taskq.canvas import Signature, StampingVisitor
from taskq.control import stamp_revocation
from taskq.drivers.transport import Message
from taskq.errors import MessageDecodeError, TaskRevokedError
from taskq.sending import send_options
from taskq.worker.revocations import Revocations

TIMEOUT = 10.0


@pytest.fixture
def app(memory_url: str) -> App:
    app = App("stamping", broker=memory_url, read_config=False)

    @app.task(name="s.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="s.stamps", bind=True)
    def stamps(self, *_args: object) -> dict[str, object]:  # type: ignore[no-untyped-def]
        return {"stamped_headers": self.request.stamped_headers, "stamps": dict(self.request.stamps or {})}

    @app.task(name="s.collect")
    def collect(values: list[object]) -> list[object]:
        return values

    return app


class RunVisitor(StampingVisitor):
    """Stamps every task with its place in the workflow, as Celery's docs do with a visitor."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_signature(self, sig: Signature, **headers: object) -> Mapping[str, object]:
        self.calls.append(f"signature {sig.task}")
        return {"visited": True}

    def on_group_start(self, group: group, **headers: object) -> Mapping[str, object]:
        self.calls.append("group start")
        return {"in_group": True}

    def on_group_end(self, group: group, **headers: object) -> None:
        self.calls.append("group end")

    def on_chain_start(self, chain: chain, **headers: object) -> Mapping[str, object]:
        self.calls.append("chain start")
        return {"in_chain": True}

    def on_chain_end(self, chain: chain, **headers: object) -> None:
        self.calls.append("chain end")

    def on_chord_body(self, sig: chord, **headers: object) -> Mapping[str, object]:
        self.calls.append("chord body")
        return {"body": True}

    def on_callback(self, callback: Signature, **headers: object) -> Mapping[str, object]:
        return {"callback": True}

    def on_errback(self, errback: Signature, **headers: object) -> Mapping[str, object]:
        return {"errback": True}


# ---- The visitor API ---------------------------------------------------------------------


def test_a_stamp_is_kept_in_the_signature_options_as_celery_keeps_it(app: App) -> None:
    sig = app.tasks["s.add"].s(1, 2).stamp(run="r1")
    assert sig.stamps == {"run": "r1"}
    assert sig.options["stamped_headers"] == ["run"]
    assert sig.options["run"] == "r1"
    assert Signature.from_dict(json.loads(json.dumps(sig))).stamps == {"run": "r1"}


def test_a_new_stamp_replaces_the_old_unless_appended(app: App) -> None:
    sig = app.tasks["s.add"].s(1, 2)
    sig.stamp(run="r1")
    sig.stamp(run="r2")
    assert sig.stamps == {"run": "r2"}
    sig.stamp(append_stamps=True, run="r3")
    assert sig.stamps == {"run": ["r2", "r3"]}


def test_the_keyword_stamps_win_over_the_visitors_of_the_same_name(app: App) -> None:
    class Clash(StampingVisitor):
        def on_signature(self, sig: Signature, **headers: object) -> Mapping[str, object]:
            return {"run": "from the visitor", "other": 1}

    sig = app.tasks["s.add"].s(1, 2).stamp(Clash(), run="given")
    assert sig.stamps == {"run": "given", "other": 1}


def test_a_chain_group_and_chord_stamp_every_task_and_call_the_visitor_in_order(app: App) -> None:
    add, collect = app.tasks["s.add"], app.tasks["s.collect"]
    flow = chain(add.s(1, 1), group(add.s(1), add.s(2)), collect.s())
    visitor = RunVisitor()
    flow.stamp(visitor, run="r1")
    first, middle, last = flow.tasks
    assert first.stamps == {"run": "r1", "in_chain": True, "visited": True}
    assert isinstance(middle, group)
    for member in middle.tasks:
        assert member.stamps == {"run": "r1", "in_chain": True, "in_group": True, "visited": True}
    assert last.stamps == {"run": "r1", "in_chain": True, "visited": True}
    assert visitor.calls == [
        "chain start",
        "signature s.add",
        "group start",
        "signature s.add",
        "signature s.add",
        "group end",
        "signature s.collect",
        "chain end",
    ]
    both = chord([add.s(1, 1), add.s(2, 2)], collect.s()).stamp(RunVisitor(), run="r2")
    assert [t.stamps["in_group"] for t in both.header.tasks] == [True, True]  # the header's start is the group's
    assert both.body.stamps == {"run": "r2", "in_group": True, "body": True, "visited": True}


def test_callbacks_and_errbacks_are_stamped_with_the_given_stamps_not_the_tasks_own(app: App) -> None:
    add = app.tasks["s.add"]
    sig = add.s(1, 1).stamp(own="mine")
    sig.link(add.s(5))
    sig.link_error({"task": "s.collect", "args": [], "kwargs": {}, "options": {}})  # a plain dict, from a message
    sig.stamp(RunVisitor(), run="r1")
    callback, errback = sig.options["link"][0], sig.options["link_error"][0]  # type: ignore[index]
    assert isinstance(errback, Signature)
    assert callback.stamps == {"run": "r1", "callback": True, "visited": True}
    assert errback.stamps == {"run": "r1", "errback": True, "visited": True}
    assert sig.stamps == {"own": "mine", "run": "r1", "visited": True}


@pytest.mark.parametrize("name", ["queue", "task_id", "link", "stamped_headers", "immutable", ""])
def test_a_stamp_named_like_a_sending_option_is_refused(app: App, name: str) -> None:
    with pytest.raises((ValueError, TypeError), match="stamp"):
        app.tasks["s.add"].s(1, 2).stamp(**{name: "x"})


def test_a_visitor_must_define_on_signature(app: App) -> None:
    with pytest.raises(NotImplementedError, match="on_signature"):
        app.tasks["s.add"].s(1, 2).stamp(StampingVisitor())


# ---- On the wire -----------------------------------------------------------------------


def test_celerys_stamping_options_become_the_stamps_header() -> None:
    options = send_options("apply_async", {"stamped_headers": ["run", "n"], "run": "r1", "n": [1, 2], "queue": "q"})
    assert options.stamps == {"run": "r1", "n": [1, 2]}
    assert options.queue == "q"
    headers = build_headers("s.add", "id-1", args=(), kwargs={}, stamps=options.stamps)
    assert headers["stamped_headers"] == ["run", "n"]
    assert headers["stamps"] == {"run": "r1", "n": [1, 2]}
    with pytest.raises(TypeError, match="stamped_headers must be a list"):
        send_options("apply_async", {"stamped_headers": "run"})


@pytest.mark.parametrize(
    ("stamped_headers", "stamps", "reason"),
    [
        ("run", {"run": 1}, "stamped_headers"),
        ([1], {}, "stamped_headers"),
        (["run"], ["x"], "stamps"),
    ],
)
def test_a_message_with_unreadable_stamps_is_refused_naming_the_header(
    app: App, stamped_headers: object, stamps: object, reason: str
) -> None:
    headers = build_headers("s.add", "id-1", args=(), kwargs={})
    headers.update(stamped_headers=stamped_headers, stamps=stamps)
    message = encode(app.serializers, "json", headers, (), {})
    with pytest.raises(MessageDecodeError, match=reason):
        decode(app.serializers, message)
    with pytest.raises(MessageDecodeError, match=reason):
        check_headers(headers)


def test_a_stamp_listed_without_a_value_reads_as_none_as_celery_reads_it(app: App) -> None:
    headers = build_headers("s.add", "id-1", args=(), kwargs={})
    headers.update(stamped_headers=["run"], stamps={})
    checked = decode(app.serializers, Message(json.dumps([[], {}, {}]).encode(), headers, "application/json"))
    assert checked.stamps == {"run": None}


def test_a_stamped_workflow_runs_and_each_task_reads_its_stamps(app: App, start_worker: Callable[..., object]) -> None:
    probe = app.tasks["s.stamps"]
    start_worker(app)
    flow = chain(probe.s(), probe.s()).stamp(run="r1")
    result = flow.apply_async()
    expected = {"stamped_headers": ["run"], "stamps": {"run": "r1"}}
    assert result.get(timeout=TIMEOUT) == expected
    assert result.parent is not None and result.parent.get(timeout=TIMEOUT) == expected  # type: ignore[union-attr]
    members = group(probe.s(), probe.s()).stamp(RunVisitor(), run="r2").apply_async().join(timeout=TIMEOUT)
    assert [m["stamps"] for m in members] == [{"run": "r2", "in_group": True, "visited": True}] * 2  # type: ignore[index]
    body = chord([probe.s(), probe.s()], probe.s()).stamp(run="r3").apply_async()
    assert body.get(timeout=TIMEOUT)["stamps"] == {"run": "r3"}  # type: ignore[index]
    assert probe.apply_async(stamped_headers=["k"], k=7).get(timeout=TIMEOUT) == {
        "stamped_headers": ["k"],
        "stamps": {"k": 7},
    }
    assert probe.delay().get(timeout=TIMEOUT) == {"stamped_headers": None, "stamps": {}}


def test_a_retried_task_keeps_its_stamps(app: App, start_worker: Callable[..., object]) -> None:
    seen: list[object] = []

    @app.task(name="s.flaky", bind=True, max_retries=2, default_retry_delay=0)
    def flaky(self) -> int:  # type: ignore[no-untyped-def]
        seen.append(dict(self.request.stamps or {}))
        if self.request.retries < 1:
            raise self.retry()
        return self.request.retries

    start_worker(app)
    assert flaky.s().stamp(run="r1").apply_async().get(timeout=TIMEOUT) == 1
    assert seen == [{"run": "r1"}, {"run": "r1"}]


# ---- Revoking by stamp -----------------------------------------------------------------


def test_revocations_match_a_stamp_by_value_or_by_any_value_of_a_list(tmp_path: Path) -> None:
    revocations = Revocations(tmp_path / "state.json")
    assert revocations.stamped({"run": "r1"}) is None
    revocations.add(stamp_revocation({"run": ["r1", "r2"], "n": 42}))
    assert revocations.stamped({"run": "r2"}) == ("run", "r2")
    assert revocations.stamped({"run": ["r0", "r1"]}) == ("run", "r1")  # appended stamps
    assert revocations.stamped({"n": 42}) == ("n", 42)
    assert revocations.stamped({"n": "42"}) is None  # a value, not its text
    assert revocations.stamped({"other": "r1"}) is None
    revocations.save()
    assert Revocations(tmp_path / "state.json").stamped({"run": "r1"}) == ("run", "r1")  # kept across restarts


def test_revoke_refuses_what_is_no_task_id_or_no_stamps(app: App) -> None:
    with pytest.raises(ValueError, match="not a task id"):
        app.control.revoke(stamp_revocation({"run": "r1"}))
    with pytest.raises(ValueError, match="mapping of stamp names"):
        app.control.revoke_by_stamped_headers({})
    with pytest.raises(ValueError, match="JSON"):
        app.control.revoke_by_stamped_headers({"run": object()})


def test_a_task_stamped_with_a_revoked_value_is_skipped_and_others_run(
    app: App, start_worker: Callable[..., object]
) -> None:
    add = app.tasks["s.add"]
    app.control.revoke_by_stamped_headers({"run": "r1"})
    start_worker(app)
    revoked = group(add.s(1, 1), add.s(2, 2)).stamp(run="r1").apply_async()
    kept = add.s(3, 3).stamp(run="r2").apply_async()
    assert kept.get(timeout=TIMEOUT) == 6
    for member in revoked.results:
        with pytest.raises(TaskRevokedError, match="revoked by its stamp run='r1'"):
            member.get(timeout=TIMEOUT)
        assert member.state == states.REVOKED

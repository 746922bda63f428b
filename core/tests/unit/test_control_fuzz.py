"""Fuzzing remote control from both ends: what a worker reads from its mailbox, and what a
client reads back.

A request comes from the broker, where any program may write: whatever its body and
headers, :func:`check_request` raises only :class:`RequestError`, and a worker handling
it (known command or not, any arguments) keeps answering. A reply comes the same way:
:func:`taskq.control.gather` keeps only the answers to its own request.
"""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskq import App
from taskq.control import gather
from taskq.drivers.transport import Letter, MailboxReader
from taskq.worker import remote
from taskq.worker.commands import COMMANDS
from taskq.worker.remote import ControlStep, RequestError, check_request

# Seconds a client waits for a reply that should come (it comes in milliseconds).
TIMEOUT = 2.0
# A property over a pure function: each example costs well under a millisecond.
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A property over a running worker: each example is a request handled, a few milliseconds.
FUZZ_WORKER = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63, -1, 0])  # JSON's integers have no bound
    | st.floats()  # NaN and the infinities too: Python's json reads them
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

#: The names the built-in commands take, so that arguments often reach a handler.
ARGUMENT_NAMES = sorted(
    {
        parameter
        for command in COMMANDS.values()
        for parameter in inspect.signature(command.handler).parameters
        if parameter not in ("state", "options")
    }
)
#: Every built-in command but the one that stops the worker under test.
METHODS = sorted(name for name in COMMANDS if name != "shutdown")
TASK_NAMES = ["fuzz.add", "nope", ""]

arguments = st.dictionaries(
    st.sampled_from(ARGUMENT_NAMES) | st.text(max_size=8),
    json_values | st.sampled_from(TASK_NAMES) | st.sampled_from(["1/s", "0", "-1/m", "nan/h", "1e400/s", "²"]),
    max_size=4,
)
reply_to = st.fixed_dictionaries({"exchange": st.text(max_size=10), "routing_key": st.text(max_size=10)})
#: Request bodies near the real ones: each field absent, right, or anything.
request_bodies = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(METHODS) | json_values,
        "arguments": arguments | json_values,
        "destination": st.none() | st.lists(st.text(max_size=10), max_size=2) | json_values,
        "pattern": st.none() | st.sampled_from(["*", "fuzz*", "(a*)*$", "[", "(?P<x", "\\"]) | json_values,
        "matcher": st.sampled_from(["glob", "pcre"]) | json_values,
        "ticket": st.text(max_size=10) | json_values,
        "reply_to": reply_to | json_values,
    },
)
#: Requests that reach a command: a built-in's name, arguments it may or may not take,
#: with or without a reply wanted.
handled_requests = st.builds(
    lambda method, given, wants_reply: {
        "method": method,
        "arguments": given,
        **({"ticket": "t", "reply_to": {"exchange": "x", "routing_key": "fuzz"}} if wants_reply else {}),
    },
    st.sampled_from(METHODS),
    arguments,
    st.booleans(),
)
headers = st.dictionaries(
    st.sampled_from(["expires", "clock", "ticket"]) | st.text(max_size=8), json_values, max_size=3
)


# ---- check_request ------------------------------------------------------------------------


@FUZZ
@given(body=json_values | request_bodies, headers=headers)
@example(body={"method": "ping"}, headers={"expires": 10**400})
@example(body={"method": "ping"}, headers={"expires": -(10**400), "clock": 10**400})
@example(body={"method": "ping", "ticket": "t", "reply_to": {"exchange": "e"}}, headers={})
def test_check_request_raises_nothing_but_request_error(body: object, headers: dict[str, object]) -> None:
    try:
        request = check_request(Letter(body, headers))
    except RequestError:
        return
    assert isinstance(body, dict)
    assert isinstance(request.method, str) and request.method == body["method"]
    assert isinstance(request.arguments, dict)
    assert request.expires is None or isinstance(request.expires, float)
    assert request.clock is None or isinstance(request.clock, int)
    assert (request.reply_to is None) == (request.ticket is None)


def test_a_request_expiring_past_what_a_float_holds_is_read_as_never_expiring() -> None:
    request = check_request(Letter({"method": "ping"}, {"expires": 10**400}))
    assert request.expires is not None and request.expires > time.time()


# ---- A worker fed hostile requests ----------------------------------------------------------


def _app(memory_url: str) -> App:
    app = App("tests", broker=memory_url, read_config=False)

    @app.task(name="fuzz.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def _control_step(worker: object) -> ControlStep:
    for step in worker.worker.blueprint.started:  # type: ignore[attr-defined]  # a WorkerThread
        if isinstance(step, ControlStep):
            return step
    raise AssertionError("the worker has no control step")


def _pings(app: App, hostname: str) -> bool:
    return app.control.ping([hostname], timeout=TIMEOUT) == [{hostname: {"ok": "pong"}}]


def test_the_control_step_handles_any_request_and_keeps_answering(
    memory_url: str, start_worker: Callable[..., object]
) -> None:
    app = _app(memory_url)
    hostname = f"fuzz-{uuid.uuid4().hex[:8]}@test"
    step = _control_step(start_worker(app, hostname=hostname))
    transport = app.new_transport()
    mailbox = transport.mailbox(str(app.conf["control_exchange"]))

    @FUZZ_WORKER
    @given(body=handled_requests | handled_requests | request_bodies | json_values, headers=st.just({}) | headers)
    @example(body={"method": "revoke", "arguments": {"task_id": "taskq:revoke-stamped:" + "[" * 50_000}}, headers={})
    @example(body={"method": "hello", "arguments": {"revoked": ["taskq:revoke-stamped:" + "{" * 50_000]}}, headers={})
    @example(body={"method": "pool_grow", "arguments": {"n": "²"}}, headers={})
    @example(body={"method": "rate_limit", "arguments": {"task_name": "fuzz.add", "rate_limit": 10**400}}, headers={})
    @example(body={"method": "ping", "pattern": "(?P<x", "matcher": "pcre"}, headers={})
    @example(body={"method": "ping", "arguments": {"state": 1}}, headers={})
    @example(body={"method": "ping"}, headers={"expires": 10**400, "clock": -(10**400)})
    def handle(body: object, headers: dict[str, object]) -> None:
        step._handle(mailbox, Letter(body, headers))

    try:
        handle()
    finally:
        mailbox.close()
        transport.close()
    assert step.handled > 15  # many examples reached a command, not only check_request
    assert _pings(app, hostname)


def test_a_worker_fed_garbage_through_its_mailbox_still_answers(
    memory_url: str, start_worker: Callable[..., object]
) -> None:
    app = _app(memory_url)
    hostname = f"fuzz-{uuid.uuid4().hex[:8]}@test"
    start_worker(app, hostname=hostname)
    transport = app.new_transport()
    mailbox = transport.mailbox(str(app.conf["control_exchange"]))

    @settings(max_examples=25, deadline=None)
    @given(letters=st.lists(st.tuples(request_bodies, headers), min_size=1, max_size=8))
    def feed(letters: list[tuple[dict[str, object], dict[str, object]]]) -> None:
        for body, sent_headers in letters:
            if body.get("method") == "shutdown":
                continue
            mailbox.broadcast(body, sent_headers)
        assert _pings(app, hostname)

    try:
        feed()
    finally:
        mailbox.close()
        transport.close()


def test_a_request_that_breaks_the_handler_is_logged_and_the_worker_keeps_answering(
    memory_url: str,
    start_worker: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _app(memory_url)
    hostname = f"fuzz-{uuid.uuid4().hex[:8]}@test"
    start_worker(app, hostname=hostname)
    real = remote.check_request

    def breaks_on_boom(letter: Letter) -> remote.ControlRequest:
        if isinstance(letter.body, dict) and letter.body.get("method") == "boom":
            raise OverflowError("a bug in reading the request")
        return real(letter)

    monkeypatch.setattr(remote, "check_request", breaks_on_boom)
    app.control.broadcast("boom")
    assert _pings(app, hostname)
    assert "handling a request failed" in caplog.text


# ---- A client fed hostile replies -----------------------------------------------------------


class ScriptedReader(MailboxReader):
    """A reply queue holding ``letters``: the first read returns them all, later reads nothing."""

    def __init__(self, letters: list[Letter]) -> None:
        self._letters = letters

    def read(self, timeout: float) -> list[Letter]:
        letters, self._letters = self._letters, []
        return letters


reply_bodies = json_values | st.dictionaries(
    st.sampled_from(["w1@test", "w2@test"]) | st.text(max_size=8) | st.integers(), json_values, max_size=3
)
reply_headers = st.fixed_dictionaries(
    {}, optional={"ticket": st.sampled_from(["ours", "theirs"]) | json_values, "clock": json_values}
)


@settings(max_examples=150, deadline=None)
@given(
    letters=st.lists(st.builds(Letter, reply_bodies, reply_headers), max_size=6), limit=st.none() | st.integers(1, 4)
)
def test_gather_keeps_only_the_answers_to_its_own_request(letters: list[Letter], limit: int | None) -> None:
    expected = []
    for letter in letters:
        if letter.headers.get("ticket") == "ours" and isinstance(letter.body, dict):
            answer = {node: value for node, value in letter.body.items() if isinstance(node, str)}
            if answer:
                expected.append(answer)
    found = gather(ScriptedReader(letters), "ours", timeout=0.001, limit=limit)
    assert found == expected[:limit]


def test_gather_stops_at_the_limit_even_when_one_read_brings_more() -> None:
    letters = [Letter({f"w{n}@test": {"ok": "pong"}}, {"ticket": "t"}) for n in range(3)]
    assert gather(ScriptedReader(letters), "t", timeout=TIMEOUT, limit=2) == [
        {"w0@test": {"ok": "pong"}},
        {"w1@test": {"ok": "pong"}},
    ]


def test_inspect_over_a_mailbox_with_hostile_replies_returns_the_good_ones(
    memory_url: str, start_worker: Callable[..., object]
) -> None:
    app = _app(memory_url)
    hostname = f"fuzz-{uuid.uuid4().hex[:8]}@test"
    start_worker(app, hostname=hostname)
    transport = app.new_transport()
    mailbox = transport.mailbox(str(app.conf["control_exchange"]))
    listener = mailbox.listen("impostor")
    stop = threading.Event()

    def impostor() -> None:
        """Answers every request with garbage: wrong tickets, no ticket, keys that are no names."""
        while not stop.is_set():
            for letter in listener.read(0.05):
                body = letter.body if isinstance(letter.body, dict) else {}
                target, ticket = body.get("reply_to"), body.get("ticket")
                if not isinstance(target, dict):
                    continue
                mailbox.reply(target, {"impostor": "x"}, {"ticket": "not-" + str(ticket)})
                mailbox.reply(target, {}, {"ticket": ticket})
                mailbox.reply(target, {"impostor": {"ok": "pong"}}, {})

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    try:
        assert app.control.inspect(timeout=0.5).ping() == {hostname: {"ok": "pong"}}
    finally:
        stop.set()
        thread.join(TIMEOUT)
        listener.close()
        mailbox.close()
        transport.close()

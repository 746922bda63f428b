"""Real workers with signing on, on SQLite, Redis and RabbitMQ: signed tasks run, everything
else is dead-lettered once with its reason, and the worker goes on with the next task.

Every test runs on each broker (RabbitMQ with Redis for results). The worker trusts the
producer, itself and a producer whose certificate has expired; a stranger signs with a key
nobody trusts. Tampering happens after signing, through a plugin that runs last on the
sending side, as a man in the middle would.
"""

from __future__ import annotations

import copy
import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from taskq import App, Task, chain, chord
from taskq.drivers.transport import DeadLetter, Message
from taskq.hookspecs import hookimpl
from taskq.testing import start_worker

pytestmark = pytest.mark.integration

MakeIdentity = Callable[..., Any]
Trusting = Callable[..., Path]
REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
START_RABBITMQ = "rabbitmq-server -detached"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no"
# Longest wait for a result or a dead letter, in seconds; a pass never comes near it.
TIMEOUT = 20.0


@dataclass
class Broker:
    """Where the apps of one test meet: a broker and a result store, with their options."""

    url: str
    options: dict[str, object]
    queue: str
    backend: str | None = None  # None: the broker's own store
    backend_options: dict[str, object] | None = None

    def settings(self) -> dict[str, object]:
        return {
            "broker": self.url,
            "backend": self.backend,
            "read_config": False,
            "broker_transport_options": self.options,
            "result_backend_transport_options": self.options if self.backend_options is None else self.backend_options,
            "task_default_queue": self.queue,
        }

    def app(self, name: str, **settings: object) -> App:
        return App(name, **self.settings(), **settings)  # type: ignore[arg-type]  # App's keyword arguments


@pytest.fixture(params=["sqlite", "redis", "amqp"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    queue = f"signed-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        yield Broker(f"sqlite:///{tmp_path}/broker.db", {}, queue)
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not running at {REDIS_URL} ({exc}); start it with: {START_REDIS}")
    prefix = f"taskq-test-{uuid.uuid4().hex[:8]}:"
    try:
        if request.param == "redis":
            yield Broker(REDIS_URL, {"global_keyprefix": prefix}, queue)
        else:
            # RabbitMQ carries the headers in AMQP tables, not JSON: the signed form must survive them.
            broker = Broker(AMQP_URL, {}, queue, REDIS_URL, {"global_keyprefix": prefix})
            transport = App("cleanup", broker=AMQP_URL, read_config=False).new_transport()
            try:
                transport.connect()
            except Exception as exc:
                pytest.fail(f"RabbitMQ is not running at {AMQP_URL} ({exc}); start it with: {START_RABBITMQ}")
            try:
                yield broker
            finally:
                transport.delete(queue)  # type: ignore[attr-defined]  # AmqpTransport's: the queue and its dead letters
                transport.close()
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


@dataclass
class Setup:
    broker: Broker
    worker: App
    producer: App
    identities: dict[str, Any]

    def sender(self, name: str, *plugins: object) -> App:
        """An app that signs with the key of ``name`` (None: signs nothing), with ``plugins``."""
        settings: dict[str, object] = {}
        if name is not None:
            who = self.identities[name]
            settings = {"security_key": str(who.key_path), "security_certificate": str(who.certificate_path)}
        return self.broker.app(f"sender-{name}", extra_plugins=list(plugins), **settings)


@pytest.fixture
def setup(broker: Broker, identity: MakeIdentity, trusting: Trusting) -> Iterator[Setup]:
    now = datetime.datetime.now(datetime.UTC)
    identities = {
        "producer": identity("producer", kind="rsa"),
        "worker": identity("worker", kind="ec"),
        "stranger": identity("stranger", kind="ec"),
        "expired": identity(
            "expired", valid_from=now - datetime.timedelta(days=30), valid_until=now - datetime.timedelta(days=1)
        ),
    }
    store = trusting(identities["producer"], identities["worker"], identities["expired"])
    worker = broker.app(
        "signed-worker",
        security_key=str(identities["worker"].key_path),
        security_certificate=str(identities["worker"].certificate_path),
        security_cert_store=str(store),
    )
    register_tasks(worker)
    producer = broker.app(
        "signed-producer",
        security_key=str(identities["producer"].key_path),
        security_certificate=str(identities["producer"].certificate_path),
    )
    try:
        yield Setup(broker, worker, producer, identities)
    finally:
        worker.close()
        producer.close()


def register_tasks(app: App) -> None:
    @app.task(name="sec.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="sec.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="sec.total")
    def total(values: list[int]) -> int:
        return sum(values)

    @app.task(name="sec.flaky", bind=True, max_retries=3)
    def flaky(self: Task[..., object], fail_times: int) -> str:
        if self.request.retries < fail_times:
            raise self.retry(countdown=0.05)
        return f"ok after {self.request.retries} retries"


def dead_letters(app: App, queue: str, count: int = 1) -> list[DeadLetter]:
    transport = app.new_transport()
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            found = transport.dead_letters(queue)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} dead letter(s) expected on {queue!r} within {TIMEOUT}s; found {found}")
    finally:
        transport.close()


class Tamper:
    """A plugin that changes a message after it was signed (it runs after the signer)."""

    def __init__(self, change: Callable[[Message], None]) -> None:
        self.change = change

    @hookimpl(trylast=True)
    def taskq_message_encoded(self, message: Message) -> None:
        self.change(message)


def change_args(message: Message) -> None:
    assert message.body.startswith(b"[[2,3]")
    message.body = b"[[2,4]" + message.body[len(b"[[2,3]") :]


def change_task(message: Message) -> None:
    message.headers["task"] = "sec.mul"


def change_eta(message: Message) -> None:
    message.headers["eta"] = datetime.datetime.now(datetime.UTC).isoformat()


# ---- Signed messages run ------------------------------------------------------------------


def test_a_signed_task_runs(setup: Setup) -> None:
    with start_worker(setup.worker, pool="solo"):
        assert setup.producer.send_task("sec.add", [2, 3]).get(timeout=TIMEOUT) == 5
    assert setup.worker.new_transport().dead_letters(setup.broker.queue) == []


def test_a_task_that_retries_runs_to_the_end_its_retries_signed_by_the_worker(setup: Setup) -> None:
    with start_worker(setup.worker, pool="solo"):
        result = setup.producer.send_task("sec.flaky", [2])
        assert result.get(timeout=TIMEOUT) == "ok after 2 retries"
    assert setup.worker.new_transport().dead_letters(setup.broker.queue) == []


def test_a_chain_and_a_chord_run_their_next_steps_signed_by_the_worker(setup: Setup) -> None:
    register_tasks(setup.producer)  # to build signatures; they run on the worker
    add, total = setup.producer.tasks["sec.add"], setup.producer.tasks["sec.total"]
    with start_worker(setup.worker, pool="solo"):
        assert chain(add.s(1, 2), add.s(10), add.s(100)).apply_async().get(timeout=TIMEOUT) == 113
        assert chord([add.s(1, 1), add.s(2, 2)], total.s()).apply_async().get(timeout=TIMEOUT) == 6
    assert setup.worker.new_transport().dead_letters(setup.broker.queue) == []


def test_a_signed_task_due_beyond_the_eta_horizon_goes_back_to_the_broker_and_still_verifies(setup: Setup) -> None:
    # The worker puts the very message it claimed back with a delay, and checks it again
    # when it claims it the second time: the signature must survive the round trip.
    setup.worker.conf.update(worker_eta_horizon=0.2)
    with start_worker(setup.worker, pool="solo"):
        result = setup.producer.send_task("sec.add", [4, 5], countdown=1.0)
        assert result.get(timeout=TIMEOUT) == 9
    assert setup.worker.new_transport().dead_letters(setup.broker.queue) == []


# ---- Everything else is dead-lettered, and the worker goes on -----------------------------


@pytest.mark.parametrize(
    ("signer", "tamper", "reason"),
    [
        (None, None, "unsigned message (task 'sec.add'"),
        ("stranger", None, "unknown signer 'sha256:"),
        ("expired", None, "expired certificate (task 'sec.add'"),
        ("producer", change_args, "bad signature (task 'sec.add'"),
        ("producer", change_task, "bad signature (task 'sec.mul'"),
        ("producer", change_eta, "bad signature (task 'sec.add'"),
    ],
    ids=["unsigned", "untrusted-key", "expired-certificate", "changed-args", "changed-task-name", "changed-eta"],
)
def test_a_message_that_fails_its_check_is_dead_lettered_once_and_the_next_task_runs(
    setup: Setup, signer: str | None, tamper: Callable[[Message], None] | None, reason: str
) -> None:
    plugins = [Tamper(tamper)] if tamper is not None else []
    sender = setup.sender(signer, *plugins)  # type: ignore[arg-type]  # None: a sender without a key
    try:
        refused = sender.send_task("sec.add", [2, 3])
        with start_worker(setup.worker, pool="solo"):
            [letter] = dead_letters(setup.worker, setup.broker.queue)
            # The worker goes on: a signed task sent after the refused one runs.
            assert setup.producer.send_task("sec.add", [20, 30]).get(timeout=TIMEOUT) == 50
        assert letter.reason.startswith(reason), letter.reason
        assert letter.message.headers["id"] == refused.id
        assert len(setup.worker.new_transport().dead_letters(setup.broker.queue)) == 1
        # Nothing ran and nothing was stored under the id the message claims.
        assert setup.producer.AsyncResult(refused.id).state == "PENDING"
    finally:
        sender.close()


# ---- Replays -----------------------------------------------------------------------------


class Capture:
    """A plugin that keeps a copy of every message its app sends, signed, as a broker reader could."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    @hookimpl(trylast=True)
    def taskq_message_encoded(self, message: Message) -> None:
        self.sent.append(copy.deepcopy(message))


@pytest.mark.parametrize("reject_replays", [True, False], ids=["rejected", "allowed"])
def test_a_captured_signed_message_sent_again_after_its_task_finished(setup: Setup, reject_replays: bool) -> None:
    capture = Capture()
    sender = setup.sender("producer", capture)
    setup.worker.conf.update(security_reject_replays=reject_replays)
    try:
        with start_worker(setup.worker, pool="solo"):
            first = sender.send_task("sec.add", [2, 3])
            assert first.get(timeout=TIMEOUT) == 5
            [message] = capture.sent
            transport = sender.new_transport()
            transport.publish(setup.broker.queue, message)  # the replay: the same bytes, signature and id
            transport.close()
            # A task sent after the replay has run once the replay has been dealt with.
            assert setup.producer.send_task("sec.add", [20, 30]).get(timeout=TIMEOUT) == 50
            if reject_replays:
                [letter] = dead_letters(setup.worker, setup.broker.queue)
                assert letter.reason.startswith(f"replayed message (task 'sec.add'[{first.id}])"), letter.reason
                assert "already finished (SUCCESS)" in letter.reason
        if not reject_replays:
            assert setup.worker.new_transport().dead_letters(setup.broker.queue) == []
    finally:
        sender.close()


def test_a_task_that_retries_is_no_replay(setup: Setup) -> None:
    # Its retries carry the same id, but it has not finished when they arrive.
    setup.worker.conf.update(security_reject_replays=True)
    with start_worker(setup.worker, pool="solo"):
        assert setup.producer.send_task("sec.flaky", [2]).get(timeout=TIMEOUT) == "ok after 2 retries"
    assert setup.worker.new_transport().dead_letters(setup.broker.queue) == []

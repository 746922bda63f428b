"""Property-based fuzzing of every message decode path, with raw writes into the broker.

One long-lived ``taskq worker`` per transport (SQLite, Redis, the filesystem, SQS on moto,
RabbitMQ) for the whole module. Each hypothesis example writes a batch of hostile
messages behind the transport's back (a raw INSERT, LPUSH, file, send_message or
basic_publish, as a foreign producer would), then a good task (the sentinel) through a
client. The example passes when the sentinel finished, the worker is the same process as
before, and every hostile message is accounted for: dead-lettered, or run (the run log or
its result says so) or, when its ``eta`` falls after the check, still waiting in the
broker (held: it must not run early), never lost. A worker that exits counts as a restart caused by input;
the next example starts a new one on a fresh namespace (a crashed claim would otherwise
keep killing workers).

The headers issue 13 names as crashing workers (eta, expires, timelimit) are fuzzed in
a test of their own.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import AMQP_URL, REDIS_URL, delete_rabbitmq_queue, delete_redis_keys, redis_settings, require_rabbitmq
from faultkit import SEED, Ledger, Row, Worker, worker_args
from hostile import (
    CRASHING_HEADERS,
    PROTOCOL_HEADERS,
    Hostile,
    hostile_bodies,
    hostile_envelopes,
    hostile_headers,
    hostile_options,
    hostile_shapes,
    new_token,
)
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st

from taskq import App
from taskq.testing import settings_env

pytestmark = pytest.mark.integration

TASKS = "e2e_app.tasks"
# Examples per test and transport, and hostile messages per example: the time budget.
EXAMPLES = 8
BATCH = 5
# Seconds the sentinel may take (a bare LPUSH is seen within the 1 s poll), and the queue to empty.
SENTINEL_TIMEOUT = 30.0
SETTLE_TIMEOUT = 20.0
# Seconds a check may last: a message due later than this after it is written must still be waiting.
CHECK_SPAN = SENTINEL_TIMEOUT + SETTLE_TIMEOUT + 10.0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    # No shrinking: each example costs seconds of real workers, and shrinking a failure found on
    # a loaded machine ran for most of an hour. The failing batch is reported as it was drawn.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
OTHER_HEADERS = tuple(name for name in PROTOCOL_HEADERS if name not in CRASHING_HEADERS)


# ---- One transport's worker, client and raw writer ----------------------------------------


class Site:
    """A transport under fuzzing: its long-lived worker, a client, and raw writes into its broker."""

    name = ""
    #: Whether the broker keeps a message as one document (an envelope) that can be written raw.
    documents = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.worker: Worker | None = None
        self.client: App | None = None
        self.namespace = ""
        self.incarnations = 0
        #: Messages of this namespace whose eta is still to come: they wait in the broker.
        self.held = 0

    # settings for the current namespace; subclasses say where
    def settings(self) -> dict[str, object]:
        raise NotImplementedError

    def write(self, message: Hostile) -> None:
        raise NotImplementedError

    def forget(self) -> None:
        """Delete what the current namespace left on a shared server."""

    def held_in_broker(self) -> int:
        """Messages the broker holds for the queue, delayed and claimed ones included."""
        assert self.client is not None
        return self.client.transport.depth(self.queue)

    @property
    def queue(self) -> str:
        return self.namespace

    @property
    def run_log(self) -> Path:
        return self.root / f"{self.namespace}-runs.log"

    def start(self) -> None:
        self.incarnations += 1
        self.held = 0
        self.namespace = f"faults-{self.name}-{uuid.uuid4().hex[:10]}"
        self.run_log.touch()
        settings = self.settings()
        env = {"TASKQ_TASK_DEFAULT_QUEUE": self.queue, "E2E_LOG": str(self.run_log)}
        env.update(settings_env(settings))
        log = self.root / f"{self.namespace}-worker.log"
        self.worker = Worker(worker_args(f"fuzz-{self.name}@test"), env, log, self.root)
        self.worker.wait_ready()
        self.client = App("faults-client", read_config=False, task_default_queue=self.queue, **settings)
        # A first task run end to end: the worker has made its schema, declared its queue (a raw
        # basic_publish to a queue not yet declared is dropped by RabbitMQ) and is consuming.
        assert self.client.send_task(f"{TASKS}.add", (0, 0)).get(timeout=SENTINEL_TIMEOUT) == 0

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.kill()
        if self.client is not None:
            self.client.close()
        self.forget()
        self.worker = self.client = None

    def ensure_worker(self) -> Worker:
        if self.worker is None or not self.worker.alive():
            self.stop()
            self.start()
        assert self.worker is not None
        return self.worker

    def dead_letter_text(self) -> str:
        assert self.client is not None
        letters = self.client.transport.dead_letters(self.queue, limit=10_000)
        return "\n".join(
            f"{letter.message.headers!r} {letter.message.properties!r} "
            f"{letter.message.body.decode('utf-8', 'replace')} {letter.reason}"
            for letter in letters
        )


class SqliteSite(Site):
    name = "sqlite"
    documents = False

    def settings(self) -> dict[str, object]:
        url = f"sqlite:///{self.root / self.namespace}.db"
        return {"broker_url": url, "result_backend": url}

    def write(self, message: Hostile) -> None:
        properties = message.properties
        stored_properties = json.dumps(properties).encode() if properties not in ({}, None) else None
        with sqlite3.connect(self.root / f"{self.namespace}.db", timeout=30) as conn:
            conn.execute(
                "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, properties, content_type,"
                " content_encoding) VALUES (?, 0, 0, ?, ?, ?, ?, ?)",
                (
                    self.queue,
                    message.body,
                    message.headers_bytes(),
                    stored_properties,
                    _sqlite_value(message.content_type),
                    _sqlite_value(message.content_encoding),
                ),
            )
        conn.close()


def _sqlite_value(value: object) -> object:
    """A hostile value as SQLite can bind it (it keeps whatever type it is given, in any column)."""
    if isinstance(value, (str, bytes, float)) or (isinstance(value, int) and -(2**63) <= value < 2**63):
        return value
    return json.dumps(value) if value is not None else ""


class RedisSite(Site):
    name = "redis"

    def settings(self) -> dict[str, object]:
        return redis_settings(self.namespace)

    def write(self, message: Hostile) -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            client.lpush(f"{self.namespace}:{self.queue}", message.as_envelope())  # kombu's layout: a list per queue
        finally:
            client.close()

    def forget(self) -> None:
        if self.namespace:
            delete_redis_keys(f"{self.namespace}:")


class FilesystemSite(Site):
    name = "filesystem"

    def settings(self) -> dict[str, object]:
        url = f"file://{self.root / self.namespace}"
        return {"broker_url": url, "result_backend": url}

    def write(self, message: Hostile) -> None:
        from taskq_filesystem._layout import file_name

        waiting = self.root / self.namespace / "queues" / file_name(self.queue) / "waiting"
        waiting.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f"{self.namespace}.partial"
        temporary.write_bytes(message.as_envelope())
        # due a moment ago, as a producer with a slightly slow clock writes it; renamed in whole
        temporary.rename(waiting / f"{time.time_ns() - 1_000_000:019d}-{message.token}-0")


class SqsSite(Site):
    name = "sqs"

    def __init__(self, root: Path, endpoint: str) -> None:
        super().__init__(root)
        self.endpoint = endpoint

    def settings(self) -> dict[str, object]:
        address = self.endpoint.removeprefix("http://")
        return {
            "broker_url": f"sqs://testing:testing@{address}",
            "broker_transport_options": {"region": "us-east-1", "is_secure": False},
            "result_backend": f"sqlite:///{self.root / self.namespace}-results.db",
        }

    def write(self, message: Hostile) -> None:
        import boto3

        from taskq_sqs._layout import sqs_queue_name

        client = boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        try:
            url = self._queue_url(client, sqs_queue_name(self.queue))
            # SQS takes only some of Unicode: what it refuses, no producer can send
            text = "".join(c for c in message.as_envelope().decode("utf-8", "replace") if _sqs_allows(c))
            client.send_message(QueueUrl=url, MessageBody=text or message.token)
        finally:
            client.close()

    @staticmethod
    def _queue_url(client: object, name: str) -> str:
        """The queue's URL, once the worker has created the queue (it does so when it first claims)."""
        deadline = time.monotonic() + SENTINEL_TIMEOUT
        while True:
            try:
                return str(client.get_queue_url(QueueName=name)["QueueUrl"])  # type: ignore[attr-defined]
            except Exception as exc:  # botocore's QueueDoesNotExist, a class made at run time
                if "NonExistentQueue" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _sqs_allows(character: str) -> bool:
    point = ord(character)
    return point in (0x9, 0xA, 0xD) or 0x20 <= point <= 0xD7FF or 0xE000 <= point <= 0xFFFD or point >= 0x10000


class AmqpSite(Site):
    name = "amqp"
    documents = False

    def settings(self) -> dict[str, object]:
        require_rabbitmq()
        # rpc:// answers only the client that sent a task: a foreign message's result goes to a file
        return {"broker_url": AMQP_URL, "result_backend": f"sqlite:///{self.root / self.namespace}-results.db"}

    def write(self, message: Hostile) -> None:
        import amqp

        conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
        conn.connect()
        try:
            channel = conn.channel()
            headers = message.headers if isinstance(message.headers, dict) else {"x-fuzz": message.token}
            properties: dict[str, object] = {
                "application_headers": _amqp_value(headers),
                "content_type": _amqp_text(message.content_type),
                "content_encoding": _amqp_text(message.content_encoding),
                **_amqp_properties(message.properties),
            }
            channel.basic_publish(amqp.Message(message.body, **properties), exchange="", routing_key=self.queue)
            # A round trip on the channel: a publish the broker refused (it closes the channel)
            # raises here, as the writer's error, instead of being counted as lost by the worker.
            channel.queue_declare(self.queue, passive=True)
        finally:
            conn.close()

    def held_in_broker(self) -> int:
        # The worker keeps a message due later in a delay queue it declares (<queue>.delay.<ms>),
        # which a client cannot list over AMQP: rabbitmqctl can ("messages": ready and unacked).
        return sum(count for name, count in _rabbitmq_queues() if name == self.queue or self._delays(name))

    def _delays(self, name: str) -> bool:
        return name.startswith(f"{self.queue}.delay.")

    def forget(self) -> None:
        if self.namespace:
            delete_rabbitmq_queue(self.queue)
            delays = [name for name, _ in _rabbitmq_queues() if self._delays(name)]
            if delays:
                import amqp

                conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
                conn.connect()
                try:
                    channel = conn.channel()
                    for name in delays:
                        channel.queue_delete(name)
                finally:
                    conn.close()


def _rabbitmq_queues() -> list[tuple[str, int]]:
    """Every queue of the local RabbitMQ with its message count, from rabbitmqctl."""
    try:
        listing = subprocess.run(
            ["rabbitmqctl", "list_queues", "-q", "name", "messages", "--no-table-headers"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except FileNotFoundError as exc:
        raise AssertionError(
            "rabbitmqctl is not on PATH: these tests count the delay queues of the local RabbitMQ with it "
            "(it comes with the rabbitmq-server package; see ../shared/SERVICES.md)"
        ) from exc
    queues = []
    for line in listing.splitlines():
        name, _, count = line.rpartition("\t")
        if name and count.isdigit():
            queues.append((name, int(count)))
    return queues


def _amqp_text(value: object) -> str:
    return value if isinstance(value, str) and len(value.encode()) < 256 else json.dumps(value)[:200]


def _amqp_properties(options: object) -> dict[str, object]:
    """Hostile delivery options as AMQP's typed properties can carry them (text, an octet)."""
    if not isinstance(options, dict):
        return {}
    carried: dict[str, object] = {}
    for name in ("correlation_id", "reply_to", "message_id", "type", "app_id"):
        if name in options:
            carried[name] = _amqp_text(options[name])
    for name in ("priority", "delivery_mode"):
        value = options.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            carried[name] = value % 256
    if carried.get("delivery_mode") not in (None, 1, 2):
        # RabbitMQ refuses any other (406 PRECONDITION_FAILED, closing the channel): such a
        # message never reaches the broker, so no producer can hand a worker one.
        del carried["delivery_mode"]
    return carried


def _amqp_value(value: object) -> object:
    """``value`` as an AMQP field table can carry it (64-bit integers, no None in py-amqp's arrays...)."""
    if isinstance(value, dict):
        return {str(k)[:128]: _amqp_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_amqp_value(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return str(value)
    return value


SITES: dict[str, Callable[[Path, pytest.FixtureRequest], Site]] = {
    "sqlite": lambda root, _: SqliteSite(root),
    "redis": lambda root, _: RedisSite(root),
    "filesystem": lambda root, _: FilesystemSite(root),
    "sqs": lambda root, request: SqsSite(root, request.getfixturevalue("moto_endpoint")),
    "amqp": lambda root, _: AmqpSite(root),
}
DOCUMENT_SITES = ["redis", "filesystem", "sqs"]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from taskq.testing.conformance import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The transport named by the parameter, with one worker kept for the module."""
    made = SITES[request.param](tmp_path_factory.mktemp(f"fuzz-{request.param}"), request)
    made.start()
    yield made
    if made.worker is not None:
        print(f"---- {made.name} worker log ----\n{made.worker.log()[-6000:]}")
    made.stop()


# ---- The check every example makes -------------------------------------------------------


def check_batch(site: Site, batch: list[Hostile], row: Row) -> None:
    """Write ``batch`` raw, then the sentinel; the worker lives on and every message is accounted for."""
    started = time.monotonic()
    worker = site.ensure_worker()
    pid = worker.pid
    written_at = time.time()
    for message in batch:
        site.write(message)
    row.tried += len(batch)
    assert site.client is not None
    client = site.client
    # Due after the check ends: such a message must wait in the broker (held), and not run.
    later = {m.token for m in batch if (due := m.due()) is not None and due > written_at + CHECK_SPAN}
    # Due during the check: the settling below waits for it to come due.
    soon = max((due for m in batch if (due := m.due()) is not None and m.token not in later), default=0.0)

    sentinel = client.send_task(f"{TASKS}.add", (2, 3))
    deadline = time.monotonic() + SENTINEL_TIMEOUT
    while worker.alive() and not sentinel.ready() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not worker.alive():
        row.input_restarts += 1
        row.lost += len(batch)  # what the dead worker held is in a namespace nobody consumes again
        row.seconds += time.monotonic() - started
        raise AssertionError(f"the {site.name} worker exited ({worker.popen.returncode}):\n{worker.log()[-3000:]}")
    assert sentinel.get(timeout=1) == 5, f"the sentinel did not finish in {SENTINEL_TIMEOUT}s"

    def pending(message: Hostile) -> bool:
        task_id = message.id()
        return task_id is None or client.AsyncResult(task_id).state == "PENDING"

    def waiting_later() -> int:
        return sum(1 for m in batch if m.token in later and m.id() is not None and pending(m))

    deadline = time.monotonic() + SETTLE_TIMEOUT + max(0.0, soon - time.time())
    while client.transport.depth(site.queue) > site.held + waiting_later() and time.monotonic() < deadline:
        time.sleep(0.05)
    letters = site.dead_letter_text()
    runs = site.run_log.read_text(encoding="utf-8")
    lost, early = [], []
    for message in batch:
        if message.token in letters:
            row.dead_lettered += 1
        elif message.token in runs:
            if message.token in later:
                early.append(message)
        elif pending(message):
            if message.token in later:
                site.held += 1
                row.held += 1
            else:
                lost.append(message)
    row.lost += len(lost)
    row.seconds += time.monotonic() - started
    assert worker.alive() and worker.pid == pid, "the worker was replaced"
    assert not lost, (
        f"{len(lost)} of {len(batch)} hostile messages were neither dead-lettered nor run "
        f"(queue depth {client.transport.depth(site.queue)}, {site.held} held for a later eta): "
        f"{[m.token for m in lost]}\n{lost!r:.3000}"
    )
    assert not early, f"{len(early)} message(s) ran before their eta: {early!r:.3000}"
    deadline = time.monotonic() + 5.0  # an acknowledgement may still be on its way
    while (in_broker := site.held_in_broker()) != site.held and time.monotonic() < deadline:
        time.sleep(0.1)
    assert in_broker == site.held, (
        f"{site.held} message(s) wait for an eta still to come, but the broker holds {in_broker} for the queue"
    )


def crashing_header_example() -> list[Hostile]:
    """Issue 13's examples: an eta and expires that are no dates, a timelimit of [1e9, 'x']."""
    return header_examples((("eta", "not-a-date"), ("expires", {"a": 1}), ("timelimit", [1e9, "x"])))


def far_eta_example() -> list[Hostile]:
    """Times past what a date can hold, which once ran as failures or waited for ever (dead-lettered
    now), and dates far off that must wait in the broker (held)."""
    return header_examples(
        (
            ("eta", 2.603480286016317e16),
            ("eta", -1e20),
            ("eta", "9999-12-31T23:59:59"),
            ("eta", "2200-01-01T00:00:00+05:00"),
            ("expires", 1e300),
        )
    )


def header_examples(values: tuple[tuple[str, object], ...]) -> list[Hostile]:
    """A message for RECORD per (header, value), each otherwise well-formed."""
    examples = []
    for name, value in values:
        token = new_token()
        message = Hostile(token, headers=None, body=b"")
        example_headers = {"lang": "py", "task": f"{TASKS}.record", "id": str(uuid.uuid4()), name: value}
        message.headers = example_headers
        message.body = json.dumps([[token], {}, {}]).encode()
        examples.append(message)
    return examples


# ---- The tests -------------------------------------------------------------------------------

ALL_SITES = list(SITES)


def fuzz(sites: list[str], messages: st.SearchStrategy[Hostile], *examples: list[Hostile]) -> Callable[..., object]:
    """A fuzz test of ``sites``: batches of ``messages`` (and ``examples``), drawn from this run's seed."""

    def decorate(test: Callable[..., None]) -> Callable[..., object]:
        wrapped = given(batch=st.lists(messages, min_size=1, max_size=BATCH))(test)
        for batch in examples:
            wrapped = example(batch=batch)(wrapped)
        return pytest.mark.parametrize("site", sites, indirect=True)(seed(SEED)(FUZZ(wrapped)))

    return decorate


@fuzz(DOCUMENT_SITES, hostile_envelopes())
def test_no_envelope_stops_the_worker_and_each_is_dead_lettered(site: Site, ledger: Ledger, batch: list[Hostile]):
    check_batch(site, batch, ledger.row("fuzz envelope", site.name))


@fuzz(["sqlite", *DOCUMENT_SITES], hostile_shapes())
def test_headers_or_properties_of_the_wrong_shape_are_dead_lettered(site: Site, ledger: Ledger, batch: list[Hostile]):
    check_batch(site, batch, ledger.row("fuzz header shapes", site.name))


@fuzz(ALL_SITES, hostile_headers(OTHER_HEADERS))
def test_any_protocol_header_value_is_run_or_dead_lettered(site: Site, ledger: Ledger, batch: list[Hostile]):
    check_batch(site, batch, ledger.row("fuzz headers", site.name))


@fuzz(ALL_SITES, hostile_headers(CRASHING_HEADERS), crashing_header_example(), far_eta_example())
def test_any_eta_expires_or_timelimit_is_run_or_dead_lettered(site: Site, ledger: Ledger, batch: list[Hostile]):
    check_batch(site, batch, ledger.row("fuzz eta/expires/limits", site.name))


@fuzz(ALL_SITES, hostile_bodies())
def test_any_body_and_content_type_is_run_or_dead_lettered(site: Site, ledger: Ledger, batch: list[Hostile]):
    check_batch(site, batch, ledger.row("fuzz bodies", site.name))


@fuzz(ALL_SITES, hostile_options())
def test_any_delivery_option_is_run_or_dead_lettered(site: Site, ledger: Ledger, batch: list[Hostile]):
    check_batch(site, batch, ledger.row("fuzz options", site.name))

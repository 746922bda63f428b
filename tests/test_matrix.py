"""Every pool with every broker: a real ``taskq worker -A e2e_app.tasks --pool=NAME`` per pair.

Each case is what a user gets from ``pip install taskq-core taskq-<broker> taskq-<pool>``:
a worker started from the command line on a small task module, with its results in the
store the broker lives in (sqlite and sqlite, redis and redis, RabbitMQ and rpc, a
directory and the same directory), or, for Amazon SQS (moto's server here), which keeps
no results, in an SQLite file. The test sends tasks with results, one that raises
(``get()`` raises it again), one that retries, and ``async def`` ones sent at once (every pool runs
them: the asyncio pool on its loop, the others to the end in the thread that runs the task);
then it stops the worker with SIGTERM, which must end it with exit code 0, leave nothing
in its queue, claimed or waiting, and log no error but the failing task's. Every case has
its own queue, key prefix and directory.
"""

from __future__ import annotations

import re
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e_helpers import (
    AMQP_URL,
    REDIS_URL,
    delete_rabbitmq_queue,
    delete_redis_keys,
    require_rabbitmq,
    require_redis,
    runs,
)

from taskq import App
from taskq.testing import settings_env
from taskq.testing.conformance import moto_server

pytestmark = pytest.mark.integration

# The task module every worker runs (-A), and where its tasks' names start.
TASKS = "e2e_app.tasks"

POOLS = ["solo", "prefork", "thread", "asyncio", "gevent", "eventlet"]
BROKERS = ["sqlite", "redis", "amqp", "filesystem", "sqs"]
# Tasks at once per pool: enough to overlap, few enough to start fast (prefork forks each).
CONCURRENCY = {"solo": 1, "prefork": 2, "thread": 4, "asyncio": 4, "gevent": 10, "eventlet": 10}
# async def tasks sent at once, so that pools which can overlap them do.
ASYNC_TASKS = 4
# Seconds any one result may take.
RESULT_TIMEOUT = 20.0
# Log lines at these levels are failures, except the one the failing task writes.
BAD_LEVELS = re.compile(r": (ERROR|CRITICAL)/")


@dataclass
class Store:
    """Where one case's worker and client meet: settings for both, and how to clean up."""

    queue: str
    settings: dict[str, object]
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def worker_env(self) -> dict[str, str]:
        """The settings as a worker reads them from its environment (TASKQ_ + upper case)."""
        env = {"TASKQ_TASK_DEFAULT_QUEUE": self.queue}
        env.update(settings_env(self.settings))
        return env


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's server for the SQS cases, started once for the module."""
    with moto_server() as endpoint:
        yield endpoint


def _sqlite(tmp_path: Path, name: str) -> Store:
    url = f"sqlite:///{tmp_path / name}.db"
    return Store(name, {"broker_url": url, "result_backend": url})


def _filesystem(tmp_path: Path, name: str) -> Store:
    url = f"file://{tmp_path / name}"
    return Store(name, {"broker_url": url, "result_backend": url})


def _redis(tmp_path: Path, name: str) -> Store:
    require_redis()
    prefix = {"global_keyprefix": f"{name}:"}
    settings: dict[str, object] = {
        "broker_url": REDIS_URL,
        "result_backend": REDIS_URL,
        "broker_transport_options": prefix,
        "result_backend_transport_options": prefix,
    }
    return Store(name, settings, [lambda: delete_redis_keys(f"{name}:")])


def _amqp(tmp_path: Path, name: str) -> Store:
    require_rabbitmq()
    return Store(name, {"broker_url": AMQP_URL, "result_backend": "rpc://"}, [lambda: delete_rabbitmq_queue(name)])


def _sqs_at(endpoint: str) -> Callable[[Path, str], Store]:
    """Stores on the SQS API at ``endpoint`` (a queue of their own), results in an SQLite file."""
    address = endpoint.removeprefix("http://")

    def make(tmp_path: Path, name: str) -> Store:
        settings: dict[str, object] = {
            "broker_url": f"sqs://testing:testing@{address}",
            "broker_transport_options": {"region": "us-east-1", "is_secure": False},
            "result_backend": f"sqlite:///{tmp_path / name}-results.db",
        }
        return Store(name, settings)

    return make


def _sqlite_with_redis_results(tmp_path: Path, name: str) -> Store:
    broker, results = _sqlite(tmp_path, name), _redis(tmp_path, name)
    for setting in ("result_backend", "result_backend_transport_options"):
        broker.settings[setting] = results.settings[setting]
    return Store(name, broker.settings, results.cleanups)


STORES: dict[str, Callable[[Path, str], Store]] = {
    "sqlite": _sqlite,
    "redis": _redis,
    "amqp": _amqp,
    "filesystem": _filesystem,
    "sqlite-with-redis-results": _sqlite_with_redis_results,
}


def errors_logged(log: str, but: str | None = None) -> list[str]:
    """The lines of a worker's log at level ERROR or CRITICAL, except those containing ``but``."""
    return [line for line in log.splitlines() if BAD_LEVELS.search(line) and (but is None or but not in line)]


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store named by the test's ``store`` parameter (one of STORES), with a queue of its own."""
    # SQS needs moto's server, which only its cases start.
    factory = _sqs_at(request.getfixturevalue("moto_endpoint")) if request.param == "sqs" else STORES[request.param]
    made = factory(tmp_path, f"taskq-matrix-{uuid.uuid4().hex[:12]}")
    yield made
    for cleanup in made.cleanups:
        cleanup()


@pytest.fixture
def client(store: Store) -> Iterator[App]:
    """A client app of its own, sending to ``store`` by task name, as another program would."""
    app = App("matrix-client", read_config=False, task_default_queue=store.queue, **store.settings)
    yield app
    app.close()


@pytest.mark.parametrize("store", BROKERS, indirect=True)
@pytest.mark.parametrize("pool", POOLS)
def test_a_worker_runs_every_kind_of_task_and_stops_cleanly_on_sigterm(pool, store, client, spawn_worker, e2e_env):
    worker = spawn_worker(f"--pool={pool}", "-c", str(CONCURRENCY[pool]), env=store.worker_env())
    worker.wait_ready()

    sums = [client.send_task(f"{TASKS}.add", (i, i)) for i in range(5)]
    failing = client.send_task(f"{TASKS}.fail", ("boom",))
    retried = client.send_task(f"{TASKS}.flaky", (f"retry-{pool}",))
    # Several at once: on pools that run them in threads or green threads, they overlap.
    awaited = [client.send_task(f"{TASKS}.async_add", (20, i)) for i in range(ASYNC_TASKS)]
    assert [r.get(timeout=RESULT_TIMEOUT) for r in sums] == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match=r"^boom$"):
        failing.get(timeout=RESULT_TIMEOUT)
    assert retried.get(timeout=RESULT_TIMEOUT) == f"retry-{pool}"
    assert [event for event, key, _ in runs(e2e_env) if key == f"retry-{pool}"] == ["try", "try", "try"]
    assert [r.get(timeout=RESULT_TIMEOUT) for r in awaited] == [20 + i for i in range(ASYNC_TASKS)]

    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()
    assert client.transport.depth(store.queue) == 0, "a message was left claimed or waiting"
    assert errors_logged(worker.log(), but="raised ValueError('boom')") == []


@pytest.mark.parametrize("store", ["sqlite-with-redis-results"], indirect=True)
@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_a_green_worker_on_another_broker_stores_its_results_in_redis(pool, store, client, spawn_worker):
    worker = spawn_worker(f"--pool={pool}", "-c", str(CONCURRENCY[pool]), env=store.worker_env())
    worker.wait_ready()
    sums = [client.send_task(f"{TASKS}.add", (i, 1)) for i in range(5)]
    assert [r.get(timeout=RESULT_TIMEOUT) for r in sums] == [1, 2, 3, 4, 5]
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()
    assert errors_logged(worker.log()) == []

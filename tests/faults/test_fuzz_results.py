"""Property-based fuzzing of result records written raw into the result store, read by a client.

A foreign writer to the store (Redis keys, SQLite rows, result files) can leave any bytes
under ``celery-task-meta-<id>``. A client's ``AsyncResult.state``, ``.traceback`` and
``.get()`` must then return, or raise a taskq error, or (for a FAILURE record) raise the
exception the record names, rebuilt; never an error of the decoding itself (a
RecursionError, a UnicodeDecodeError, a KeyError...) and never by importing a module the
record names.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import REDIS_URL, delete_redis_keys, require_redis
from faultkit import SEED, Ledger
from hostile import DEEP, date_like, json_values
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

from taskq import App
from taskq.errors import TaskqError

pytestmark = pytest.mark.integration

EXAMPLES = 60
KEY_PREFIX = "celery-task-meta-"
STATES = ["SUCCESS", "FAILURE", "RETRY", "REVOKED", "PENDING", "STARTED", "RECEIVED"]
# Seconds get() waits on a record that is not finished.
GET_TIMEOUT = 0.05

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

exception_names = st.sampled_from(["ValueError", "KeyError", "TaskError", "SystemExit", "Nope", "os.path"]) | st.text(
    max_size=20
)
module_names = st.sampled_from(["builtins", "taskq.errors", "no.such.module", "", "os"]) | json_values
stored_exceptions = st.fixed_dictionaries(
    {},
    optional={"exc_type": exception_names | json_values, "exc_message": json_values, "exc_module": module_names},
)
records = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(STATES) | json_values,
        "result": json_values | stored_exceptions,
        "traceback": json_values,
        "children": json_values,
        "date_done": date_like,
        "task_id": json_values,
    },
)


@st.composite
def raw_records(draw: st.DrawFn) -> tuple[str, bytes]:
    """A stored record as (kind, bytes): JSON objects of any shape, and what is not JSON at all.

    Records nested too deeply are made by :func:`record_bytes` from their kind, so that a
    failing example prints short.
    """
    kind = draw(st.sampled_from(["record", "record", "record", "json", "bytes", "not-utf8", "compressed"]))
    if kind == "record":
        return kind, json.dumps(draw(records)).encode()
    if kind == "json":
        return kind, json.dumps(draw(json_values)).encode()
    if kind == "bytes":
        return kind, draw(st.binary(max_size=64))
    if kind == "not-utf8":
        return kind, b'{"status": "SUCCESS", "result": "\xff\xfe"}'
    # the magic bytes of zlib, gzip, bzip2 or xz, then garbage: the reader tries to decompress
    magic = draw(st.sampled_from([b"\x78\x9c", b"\x1f\x8b", b"BZh", b"\xfd7zXZ"]))
    return kind, magic + draw(st.binary(max_size=32))


def deep_record() -> bytes:
    return b'{"status": "SUCCESS", "result": ' + b"[" * DEEP + b"]" * DEEP + b"}"


class Store:
    """A result store a client reads, and a raw writer into it."""

    def __init__(self, name: str, settings: dict[str, object], write: Callable[[str, bytes], None]) -> None:
        self.name = name
        self.client = App("faults-results", read_config=False, broker_url="memory://", **settings)
        self.write = write
        self.redis_prefix = ""

    def check_writes_reach_the_client(self) -> None:
        """A good record written raw reads back: so a fuzzed one is read too, not missed."""
        task_id = str(uuid.uuid4())
        self.write(KEY_PREFIX + task_id, json.dumps({"status": "SUCCESS", "result": 7}).encode())
        assert self.client.AsyncResult(task_id).get(timeout=5) == 7, f"the raw writes miss the {self.name} store"


def _sqlite(root: Path) -> Store:
    path = root / "results.db"
    store = Store("sqlite", {"result_backend": f"sqlite:///{path}"}, lambda key, data: None)
    store.client.backend.get("x")  # creates the table

    def write(key: str, data: bytes) -> None:
        with sqlite3.connect(path, timeout=30) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO taskq_results (key, value, expires_at) VALUES (?, ?, NULL)", (key, data)
            )
        conn.close()

    store.write = write
    return store


def _redis(root: Path) -> Store:
    import redis

    require_redis()
    prefix = f"faults-results-{uuid.uuid4().hex[:10]}:"
    options = {"result_backend_transport_options": {"global_keyprefix": prefix}}

    def write(key: str, data: bytes) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            client.set(prefix + key, data, ex=600)
        finally:
            client.close()

    store = Store("redis", {"result_backend": REDIS_URL, **options}, write)
    store.redis_prefix = prefix
    return store


def _filesystem(root: Path) -> Store:
    store = Store("filesystem", {"result_backend": f"file://{root / 'results'}"}, lambda key, data: None)
    # through the store's own primitive: a result file holds its expiry before the record
    store.write = lambda key, data: store.client.backend.set(key, data)  # type: ignore[attr-defined]
    return store


STORES = {"sqlite": _sqlite, "redis": _redis, "filesystem": _filesystem}


@pytest.fixture(scope="module")
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    made = STORES[request.param](tmp_path_factory.mktemp(f"results-{request.param}"))
    made.check_writes_reach_the_client()
    yield made
    made.client.close()
    if made.redis_prefix:
        delete_redis_keys(made.redis_prefix)


def named_exception(record: bytes) -> str | None:
    """The exception type a FAILURE/RETRY record names, when it is a readable JSON object."""
    try:
        value = json.loads(record)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, dict) and isinstance(value.get("result"), dict):
        return str(value["result"].get("exc_type")).rsplit(".", 1)[-1]
    return None


def read_back(store: Store, record: bytes) -> list[str]:
    """Write ``record`` raw and read it as a client does; what went wrong (nothing, when it held)."""
    task_id = str(uuid.uuid4())
    store.write(KEY_PREFIX + task_id, record)
    problems = []
    named = named_exception(record)
    for what, read in (
        ("state", lambda r: r.state),
        ("traceback", lambda r: r.traceback),
        ("get", lambda r: r.get(timeout=GET_TIMEOUT)),
    ):
        try:
            read(store.client.AsyncResult(task_id))
        except TaskqError:
            continue
        except BaseException as exc:
            if what == "get" and named is not None and type(exc).__name__ == named:
                continue  # the task's own exception, rebuilt as the record says
            problems.append(f"{what} raised {type(exc).__name__}: {str(exc)[:200]}")
    return problems


@pytest.mark.parametrize("store", list(STORES), indirect=True)
@seed(SEED)
@FUZZ
@given(record=raw_records())
@example(record=("json", b"{nope"))
@example(record=("not-utf8", b'{"status": "SUCCESS", "result": "\xff\xfe"}'))
@example(record=("record", b"{}"))
@example(record=("record", b'{"status": [1]}'))
@example(record=("compressed", b"\x78\x9cgarbage"))
def test_a_client_reads_any_stored_record_without_a_decoding_error(
    store: Store, ledger: Ledger, record: tuple[str, bytes]
):
    row = ledger.row("fuzz result records", store.name)
    row.tried += 1
    problems = read_back(store, record[1])
    row.lost += bool(problems)  # here: reads that failed with an error of the decoding itself
    assert not problems, f"record {record[1][:300]!r}: {problems}"


@pytest.mark.parametrize("store", list(STORES), indirect=True)
def test_a_client_reads_a_record_nested_too_deeply_without_a_decoding_error(store: Store, ledger: Ledger):
    row = ledger.row("deep result record", store.name)
    row.tried += 1
    problems = read_back(store, deep_record())
    row.lost += bool(problems)
    assert not problems, problems


@pytest.mark.parametrize("store", list(STORES), indirect=True)
def test_a_stored_failure_never_makes_the_client_import_its_module(store: Store, ledger: Ledger):
    row = ledger.row("result record imports", store.name)
    row.tried += 1
    sys.modules.pop("faults_canary", None)
    record = {"status": "FAILURE", "result": {"exc_type": "Boom", "exc_module": "faults_canary", "exc_message": []}}
    assert read_back(store, json.dumps(record).encode()) == []
    imported = "faults_canary" in sys.modules
    row.lost += imported
    assert not imported, "reading a result record imported the module it named (faults_canary)"

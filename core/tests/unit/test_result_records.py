"""Result records are untrusted: reading one never imports a module or raises a stranger's error.

Anyone who can write to the result store can write a FAILURE record naming any module and
type. A client rebuilds the exception only from a module already imported (or one listed
in ``result_exception_modules``), only when it is a real exception class whose
constructor takes the stored arguments; else it raises :class:`taskq.TaskError`, which
carries the original type's module, name and message. Any other malformed record raises
a :class:`taskq.TaskqError` that says what is wrong with it.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq import App, AsyncResult, TaskError, TaskqError, errors, states
from taskq.drivers.backend import KeyValueBackend, exception_to_meta, group_member_ids
from taskq.errors import SerializationError

CANARY = "taskq_result_canary_module"


def write_raw(app: App, record: object) -> AsyncResult[object]:
    """Write ``record`` as JSON straight into the store, as a foreign writer would."""
    backend = app.backend
    assert isinstance(backend, KeyValueBackend)
    task_id = str(uuid.uuid4())
    backend.set(backend.task_key(task_id), json.dumps(record).encode("utf-8"))
    return AsyncResult(task_id, app=app)


def failure(exc_module: object, exc_type: object, exc_message: object = ("boom",)) -> dict[str, object]:
    """A FAILURE record in the layout Celery writes."""
    result = {"exc_type": exc_type, "exc_message": exc_message, "exc_module": exc_module}
    return {"status": "FAILURE", "result": result, "traceback": "Traceback ...", "children": [], "task_id": "x"}


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """An importable module that, when imported, leaves a file behind: proof it ran."""
    ran = tmp_path / "canary-ran"
    (tmp_path / f"{CANARY}.py").write_text(
        f"from pathlib import Path\nPath({str(ran)!r}).write_text('imported')\n"
        "class CanaryError(Exception):\n    pass\n",
        encoding="utf-8",
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield ran
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(CANARY, None)


def test_a_failure_naming_a_module_not_imported_never_imports_it(app: App, canary: Path) -> None:
    result = write_raw(app, failure(CANARY, "CanaryError", ["stored message"]))
    with pytest.raises(TaskError, match=rf"{CANARY}\.CanaryError: stored message") as info:
        result.get(timeout=1)
    assert (info.value.exc_module, info.value.exc_type, info.value.message) == (CANARY, "CanaryError", "stored message")
    assert isinstance(result.result, TaskError)
    assert result.state == states.FAILURE
    assert CANARY not in sys.modules
    assert not canary.exists(), "reading a result ran the top-level code of a module the record named"


def test_result_exception_modules_allows_importing_a_listed_module(memory_url: str, canary: Path) -> None:
    app = App("tests", broker=memory_url, read_config=False, result_exception_modules=[CANARY])
    result = write_raw(app, failure(CANARY, "CanaryError", ["allowed"]))
    with pytest.raises(Exception, match="allowed") as info:
        result.get(timeout=1)
    assert type(info.value).__name__ == "CanaryError"
    assert type(info.value).__module__ == CANARY


def test_celery_failure_records_of_builtins_and_imported_types_still_rebuild(app: App) -> None:
    result = write_raw(app, failure("builtins", "ValueError", ["bad input"]))
    with pytest.raises(ValueError, match="bad input"):
        result.get(timeout=1)
    # json is imported (taskq uses it): json.JSONDecodeError takes (msg, doc, pos).
    result = write_raw(app, failure("json.decoder", "JSONDecodeError", ["Expecting value", "x", 0]))
    with pytest.raises(json.JSONDecodeError):
        result.get(timeout=1)
    # Celery stores exc_message as a bare string in old records, and may omit exc_module.
    result = write_raw(app, {"status": "FAILURE", "result": {"exc_type": "KeyError", "exc_message": "k"}})
    with pytest.raises(KeyError):
        result.get(timeout=1)


@pytest.mark.parametrize(
    ("exc_module", "exc_type"),
    [
        ("os", "system"),  # a function, not a class
        ("builtins", "object"),  # a class, not an exception
        ("builtins", "SystemExit"),  # would end the client's program
        ("builtins", "KeyboardInterrupt"),
        ("taskq.drivers", "meta_to_exception"),  # a lazy attribute: looking it up imports
        ("builtins", "__import__"),
        ("sys", "modules.__class__"),
        ("json.decoder", "JSONDecodeError.__init__"),
    ],
)
def test_anything_but_an_exception_class_comes_back_as_task_error(app: App, exc_module: str, exc_type: str) -> None:
    result = write_raw(app, failure(exc_module, exc_type, ["echo hello"]))
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert (info.value.exc_module, info.value.exc_type) == (exc_module, exc_type)


class ExplodingError(Exception):
    def __init__(self, *args: object) -> None:
        raise RuntimeError("constructor refuses")


class StrangeStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_a_constructor_that_raises_falls_back_to_task_error(app: App) -> None:
    result = write_raw(app, failure(__name__, "ExplodingError", ["x"]))
    with pytest.raises(TaskError, match="ExplodingError: x"):
        result.get(timeout=1)


def test_json_decode_error_with_wrong_arguments_falls_back_to_task_error(app: App) -> None:
    result = write_raw(app, failure("json.decoder", "JSONDecodeError", ["only one"]))
    with pytest.raises(TaskError, match="JSONDecodeError: only one"):
        result.get(timeout=1)


# ---- Fuzzing: any JSON at all in the store ---------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
names = st.sampled_from(
    [CANARY, "builtins", "os", "sys", "json", "json.decoder", "taskq", "taskq.errors", "subprocess", "antigravity", ""]
) | st.text(max_size=12)
types_ = st.sampled_from(
    ["ValueError", "CanaryError", "system", "Popen", "JSONDecodeError", "TaskError", "SystemExit", "object", "a.b.c"]
) | st.text(max_size=12)
records = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"status": st.sampled_from(["FAILURE", "SUCCESS", "RETRY", "REVOKED", "PENDING"]) | json_values},
        optional={"result": json_values, "traceback": json_values, "children": json_values, "date_done": json_values},
    ),
    st.builds(failure, names | json_values, types_ | json_values, json_values),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=records)
def test_any_json_record_reads_as_a_value_or_a_taskq_error_and_imports_nothing(
    app: App, canary: Path, record: object
) -> None:
    import base64  # noqa: F401 - decoders of tagged values may import these stdlib modules
    import decimal  # noqa: F401
    import uuid as _uuid  # noqa: F401

    before = set(sys.modules)
    result = write_raw(app, record)
    for read in (
        lambda: result.state,
        lambda: result.traceback,
        lambda: result.result,
        lambda: result.ready(),
        lambda: result.date_done,
        lambda: result.children,
        lambda: result.get(timeout=0.01),
        lambda: result.get(timeout=0.01, propagate=False),
    ):
        result._cache = None
        try:
            read()
        except TaskqError:
            pass
        except BaseException as exc:
            # A rebuilt exception of a type already imported here is what get() raises.
            if not (isinstance(exc, Exception) and type(exc).__module__ in before):
                raise
    assert set(sys.modules) - before == set()
    assert not canary.exists()


@pytest.mark.parametrize(
    "data",
    [b"\x78\x9cgarbage", b"\x1f\x8bgarbage", b"BZhgarbage", b"\xfd7zXZgarbage", b"{nope", b'{"status": "\xff"}'],
)
def test_bytes_that_are_no_record_raise_serialization_error(app: App, data: bytes) -> None:
    backend = app.backend
    assert isinstance(backend, KeyValueBackend)
    task_id = str(uuid.uuid4())
    backend.set(backend.task_key(task_id), data)
    result = AsyncResult(task_id, app=app)
    with pytest.raises(SerializationError, match="cannot be read"):
        result.state  # noqa: B018 - the read is the test
    with pytest.raises(SerializationError):
        result.get(timeout=1)


# ---- taskq's exceptions under Celery's names ------------------------------------------


@pytest.mark.parametrize(
    ("exc", "module", "name"),
    [
        (errors.TaskRevokedError("expired"), "celery.exceptions", "TaskRevokedError"),
        (errors.ChordError("a part failed"), "celery.exceptions", "ChordError"),
        (errors.TimeLimitExceeded(5.0), "billiard.exceptions", "TimeLimitExceeded"),
        (errors.WorkerLostError("killed"), "billiard.exceptions", "WorkerLostError"),
    ],
)
def test_taskq_exceptions_that_celery_has_are_stored_under_celery_names_and_read_back_as_taskq_ones(
    app: App, exc: Exception, module: str, name: str
) -> None:
    stored = exception_to_meta(exc)
    assert (stored["exc_module"], stored["exc_type"]) == (module, name)
    result = write_raw(app, {"status": "FAILURE", "result": stored, "traceback": None, "task_id": "x"})
    with pytest.raises(type(exc)) as info:
        result.get(timeout=1)
    assert info.value.args == exc.args


def test_a_celery_revoked_record_is_read_as_taskq_revoked_error(app: App) -> None:
    result = write_raw(app, failure("celery.exceptions", "TaskRevokedError", ["expired"]))
    with pytest.raises(errors.TaskRevokedError, match="expired"):
        result.get(timeout=1)


def test_other_exceptions_keep_their_own_names() -> None:
    stored = exception_to_meta(ValueError("x"))
    assert stored == {"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"}
    assert exception_to_meta(errors.ConfigError("x"))["exc_module"] == "taskq.errors"


# ---- Saved groups: Celery's layout, and the one taskq wrote before -----------------------


def test_a_group_is_saved_as_celery_saves_it(app: App) -> None:
    backend = app.backend
    assert isinstance(backend, KeyValueBackend)
    backend.save_group("g1", ["a", "b"])
    raw = backend.get(backend.group_keyprefix + "g1")
    assert raw is not None
    assert json.loads(raw)["result"] == [["g1", None], [[["a", None], None], [["b", None], None]]]


@pytest.mark.parametrize(
    "saved",
    [
        [["g1", None], [[["a", None], None], [["b", None], None]]],  # Celery's GroupResult.as_tuple()
        [[["a", None], None], [["b", None], None]],  # taskq's earlier layout
    ],
)
def test_a_saved_group_is_read_in_either_layout(saved: object) -> None:
    assert group_member_ids(saved, "g1") == ["a", "b"]


def test_a_malformed_saved_group_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="saved group g1 is malformed"):
        group_member_ids({"not": "a list"}, "g1")

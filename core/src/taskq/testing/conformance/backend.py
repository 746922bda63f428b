"""The result backend conformance kit: one test per behaviour of a result backend.

Subclass :class:`ResultBackendContract` in a plugin's tests and provide a ``backend``
fixture. A backend that declares ``capabilities.expiry`` also provides ``make_backend``:
a fixture returning a factory ``make_backend(expires=seconds)`` for a second instance on
the same store with that expiry, which the kit uses to see results expire.

Tests use fresh task and group ids, so they need no cleanup between them. Timing is
checked with deadlines and generous bounds, never with bare sleeps.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from taskq import errors, states
from taskq.drivers.backend import ChordPart, ResultBackend, meta_to_exception

# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 10.0
# Upper bound, in seconds, for a wait that should end promptly; generous for busy CI.
PROMPT = 5.0
# Pause between two checks of a condition, in seconds.
POLL = 0.02
# Expiry, in seconds, of results in the expiry test.
SHORT_EXPIRY = 0.5

BackendFactory = Callable[..., ResultBackend]


class ContractTestError(ValueError):
    """An exception defined where the kit can import it back."""


def new_id() -> str:
    return uuid.uuid4().hex


class ResultBackendContract:
    """Every behaviour a result backend promises. Subclass it and provide ``backend``."""

    @pytest.fixture
    def backend(self) -> ResultBackend:
        raise NotImplementedError("provide a 'backend' fixture that returns a ResultBackend")

    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        """Override: return ``factory(expires=...)`` making backends on the same store."""
        raise NotImplementedError(
            "this backend declares capabilities.expiry=True: provide a 'make_backend' fixture "
            "returning a factory make_backend(expires=seconds) so the kit can test expiry"
        )

    # ---- Store and read --------------------------------------------------------------

    def test_stored_success_result_round_trips(self, backend: ResultBackend) -> None:
        task_id = new_id()
        backend.store_result(task_id, {"sum": 4, "items": [1, "two", None]}, states.SUCCESS)
        meta = backend.get_task_meta(task_id)
        assert meta["status"] == states.SUCCESS
        assert meta["result"] == {"sum": 4, "items": [1, "two", None]}
        assert meta["task_id"] == task_id
        assert meta["traceback"] is None
        assert meta["date_done"]

    def test_a_custom_state_and_its_meta_round_trip_and_are_replaced_by_the_outcome(
        self, backend: ResultBackend
    ) -> None:
        """``self.update_state(state="PROGRESS", meta={...})``: shown while the task runs."""
        task_id = new_id()
        backend.store_result(task_id, {"done": 3, "of": 10}, "PROGRESS")
        meta = backend.get_task_meta(task_id)
        assert (meta["status"], meta["result"]) == ("PROGRESS", {"done": 3, "of": 10})
        backend.store_result(task_id, {"done": 7, "of": 10}, "PROGRESS")
        assert backend.get_task_meta(task_id)["result"] == {"done": 7, "of": 10}
        backend.store_result(task_id, 10, states.SUCCESS)
        meta = backend.get_task_meta(task_id)
        assert (meta["status"], meta["result"]) == (states.SUCCESS, 10)

    def test_unknown_task_is_pending(self, backend: ResultBackend) -> None:
        task_id = new_id()
        meta = backend.get_task_meta(task_id)
        assert meta["status"] == states.PENDING
        assert meta["result"] is None

    def test_later_state_replaces_an_earlier_one(self, backend: ResultBackend) -> None:
        task_id = new_id()
        backend.store_result(task_id, {"pid": 1}, states.STARTED)
        assert backend.get_task_meta(task_id)["status"] == states.STARTED
        backend.store_result(task_id, 42, states.SUCCESS)
        meta = backend.get_task_meta(task_id)
        assert (meta["status"], meta["result"]) == (states.SUCCESS, 42)

    def test_failure_stores_the_exception_and_meta_to_exception_rebuilds_its_type(self, backend: ResultBackend) -> None:
        task_id = new_id()
        backend.store_result(
            task_id, ContractTestError("bad input", 3), states.FAILURE, traceback="Traceback (most...)"
        )
        meta = backend.get_task_meta(task_id)
        assert meta["status"] == states.FAILURE
        assert meta["traceback"] == "Traceback (most...)"
        assert isinstance(meta["result"], dict)
        assert meta["result"]["exc_type"] == "ContractTestError"
        assert meta["result"]["exc_module"] == __name__
        exc = meta_to_exception(meta["result"])
        assert type(exc) is ContractTestError
        assert exc.args == ("bad input", 3)

    def test_request_info_fields_pass_through(self, backend: ResultBackend) -> None:
        task_id = new_id()
        info = {
            "name": "tests.add",
            "args": [2, 2],
            "kwargs": {"extra": True},
            "worker": "worker1@host",
            "retries": 1,
            "queue": "default",
        }
        backend.store_result(task_id, 4, states.SUCCESS, request_info=info)
        meta = backend.get_task_meta(task_id)
        for key, value in info.items():
            assert meta[key] == value

    def test_forget_deletes_the_result(self, backend: ResultBackend) -> None:
        task_id = new_id()
        backend.store_result(task_id, 1, states.SUCCESS)
        backend.forget(task_id)
        assert backend.get_task_meta(task_id)["status"] == states.PENDING
        backend.forget(task_id)  # forgetting twice is fine

    def test_get_many_returns_every_result_pending_included(self, backend: ResultBackend) -> None:
        done, failed, unknown = new_id(), new_id(), new_id()
        backend.store_result(done, "ok", states.SUCCESS)
        backend.store_result(failed, ContractTestError("no"), states.FAILURE)
        metas = backend.get_many([done, unknown, failed])
        assert set(metas) == {done, failed, unknown}
        assert metas[done]["status"] == states.SUCCESS
        assert metas[done]["result"] == "ok"
        assert metas[failed]["status"] == states.FAILURE
        assert metas[unknown]["status"] == states.PENDING
        assert backend.get_many([]) == {}

    # ---- Groups and chords -----------------------------------------------------------

    def test_group_is_saved_restored_and_deleted(self, backend: ResultBackend) -> None:
        group_id, members = new_id(), [new_id() for _ in range(3)]
        backend.save_group(group_id, members)
        assert backend.restore_group(group_id) == members
        backend.delete_group(group_id)
        assert backend.restore_group(group_id) is None

    def test_restoring_an_unknown_group_gives_none(self, backend: ResultBackend) -> None:
        assert backend.restore_group(new_id()) is None

    def test_chord_counter_starts_at_one_and_increases(self, backend: ResultBackend) -> None:
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False")
        group_id = new_id()
        assert [backend.incr_chord_counter(group_id) for _ in range(4)] == [1, 2, 3, 4]
        assert backend.incr_chord_counter(new_id()) == 1

    def test_chord_counter_is_atomic_across_threads(self, backend: ResultBackend) -> None:
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False")
        group_id, threads, per_thread = new_id(), 4, 50
        seen: list[int] = []
        lock = threading.Lock()

        def count() -> None:
            mine = [backend.incr_chord_counter(group_id) for _ in range(per_thread)]
            assert mine == sorted(mine)  # each thread sees the counter go up
            with lock:
                seen.extend(mine)

        workers = [threading.Thread(target=count) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(DEADLINE)
        assert sorted(seen) == list(range(1, threads * per_thread + 1))

    def test_chord_counter_reads_as_counted(self, backend: ResultBackend) -> None:
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False")
        group_id = new_id()
        assert backend.read_chord_counter(group_id) == 0
        for _ in range(3):
            backend.incr_chord_counter(group_id)
        assert backend.read_chord_counter(group_id) == 3

    def test_a_chord_completes_once_with_the_header_results_in_header_order(self, backend: ResultBackend) -> None:
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False")
        group_id, members = new_id(), [new_id() for _ in range(3)]
        backend.save_group(group_id, members)
        backend.set_chord_size(group_id, len(members))
        for index, task_id in enumerate(members):
            backend.store_result(task_id, index * 10, states.SUCCESS)
        parts = [ChordPart(group_id, tid, index, states.SUCCESS, index * 10) for index, tid in enumerate(members)]
        assert backend.count_chord_part(parts[2], len(members)) is None
        assert backend.count_chord_part(parts[0], len(members)) is None
        metas = backend.count_chord_part(parts[1], len(members))
        assert metas is not None
        assert [(m["task_id"], m["status"], m["result"]) for m in metas] == [
            (task_id, states.SUCCESS, index * 10) for index, task_id in enumerate(members)
        ]
        backend.chord_body_sent(group_id)
        assert backend.count_chord_part(parts[1], len(members)) is None  # a part run again: no second body
        assert backend.count_chord_part(parts[0], len(members)) is None

    def test_parts_ending_at_once_in_threads_complete_the_chord_once(self, backend: ResultBackend) -> None:
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False")
        group_id, members = new_id(), [new_id() for _ in range(6)]
        backend.save_group(group_id, members)
        backend.set_chord_size(group_id, len(members))
        for index, task_id in enumerate(members):
            backend.store_result(task_id, index, states.SUCCESS)
        parts = [ChordPart(group_id, tid, index, states.SUCCESS, index) for index, tid in enumerate(members)]
        taken: list[object] = []
        start = threading.Barrier(len(parts))

        def count(part: ChordPart) -> None:
            start.wait(DEADLINE)
            metas = backend.count_chord_part(part, len(members))
            if metas is not None:
                taken.append([m["result"] for m in metas])

        threads = [threading.Thread(target=count, args=(part,)) for part in parts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        assert taken == [list(range(len(members)))]

    def test_the_part_that_took_a_chord_takes_it_again_until_its_body_is_marked_sent(
        self, backend: ResultBackend
    ) -> None:
        """The worker that took the chord died before it sent the body: its header task (acks
        late) runs again, counts again, and must get the header's records again to send it."""
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False")
        group_id, members = new_id(), [new_id() for _ in range(3)]
        backend.save_group(group_id, members)
        backend.set_chord_size(group_id, len(members))
        parts = [ChordPart(group_id, tid, index, states.SUCCESS, index * 10) for index, tid in enumerate(members)]
        for part in parts:
            backend.store_result(part.task_id, part.result, states.SUCCESS)
        assert backend.count_chord_part(parts[0], len(members)) is None
        assert backend.count_chord_part(parts[2], len(members)) is None
        first = backend.count_chord_part(parts[1], len(members))
        assert first is not None
        again = backend.count_chord_part(parts[1], len(members))  # run again: its worker died before sending
        assert again is not None
        assert [(m["task_id"], m["result"]) for m in again] == [(m["task_id"], m["result"]) for m in first]
        assert backend.count_chord_part(parts[1], len(members)) is not None  # and died again
        backend.chord_body_sent(group_id)
        backend.chord_body_sent(group_id)  # the body sent by a part taken again is marked sent again
        assert backend.count_chord_part(parts[1], len(members)) is None
        assert backend.count_chord_part(parts[0], len(members)) is None

    def test_another_part_counted_again_does_not_take_a_chord_that_is_taken(self, backend: ResultBackend) -> None:
        """While the chord's body is not marked sent, the worker that took the chord may be
        sending it: a header task run again for another reason must not send it too."""
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False")
        group_id, members = new_id(), [new_id() for _ in range(3)]
        backend.save_group(group_id, members)
        backend.set_chord_size(group_id, len(members))
        parts = [ChordPart(group_id, tid, index, states.SUCCESS, index * 10) for index, tid in enumerate(members)]
        for part in parts:
            backend.store_result(part.task_id, part.result, states.SUCCESS)
        assert backend.count_chord_part(parts[0], len(members)) is None
        assert backend.count_chord_part(parts[1], len(members)) is None
        assert backend.count_chord_part(parts[2], len(members)) is not None
        assert backend.count_chord_part(parts[0], len(members)) is None
        assert backend.count_chord_part(parts[1], len(members)) is None

    def test_a_part_counted_twice_does_not_complete_the_chord_before_the_others_end(
        self, backend: ResultBackend
    ) -> None:
        """An acks-late header task whose worker died after it counted runs again and counts
        again: the chord must still wait for every other task, then complete once."""
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False")
        group_id, members = new_id(), [new_id() for _ in range(3)]
        backend.save_group(group_id, members)
        backend.set_chord_size(group_id, len(members))
        parts = [ChordPart(group_id, tid, index, states.SUCCESS, index * 10) for index, tid in enumerate(members)]
        backend.store_result(members[0], 0, states.SUCCESS)
        assert backend.count_chord_part(parts[0], len(members)) is None
        assert backend.count_chord_part(parts[0], len(members)) is None  # run again after its worker died
        backend.store_result(members[1], 10, states.SUCCESS)
        assert backend.count_chord_part(parts[1], len(members)) is None  # members[2] has not ended
        backend.store_result(members[2], 20, states.SUCCESS)
        metas = backend.count_chord_part(parts[2], len(members))
        assert metas is not None
        assert [m["result"] for m in metas] == [0, 10, 20]
        backend.chord_body_sent(group_id)
        assert backend.count_chord_part(parts[2], len(members)) is None

    def test_a_chord_part_whose_size_is_unknown_never_completes_the_chord(self, backend: ResultBackend) -> None:
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False")
        part = ChordPart(new_id(), new_id(), 0, states.SUCCESS, 1)
        backend.store_result(part.task_id, 1, states.SUCCESS)
        try:
            assert backend.count_chord_part(part) is None  # counted, waiting for the size
        except errors.ChordError as exc:
            assert "unknown" in str(exc)

    # ---- Waiting ----------------------------------------------------------------------

    def test_wait_for_returns_soon_after_a_result_is_stored_from_another_thread(self, backend: ResultBackend) -> None:
        task_id = new_id()
        storer = threading.Timer(0.2, backend.store_result, (task_id, 7, states.SUCCESS))
        started = time.monotonic()
        storer.start()
        try:
            meta = backend.wait_for(task_id, timeout=PROMPT * 2)
        finally:
            storer.join()
        assert time.monotonic() - started < PROMPT
        assert meta["result"] == 7

    def test_wait_for_returns_at_once_when_the_result_is_ready(self, backend: ResultBackend) -> None:
        task_id = new_id()
        backend.store_result(task_id, 1, states.SUCCESS)
        started = time.monotonic()
        assert backend.wait_for(task_id, timeout=PROMPT * 2)["status"] == states.SUCCESS
        assert time.monotonic() - started < PROMPT

    def test_wait_for_ignores_states_that_are_not_ready(self, backend: ResultBackend) -> None:
        task_id = new_id()
        backend.store_result(task_id, None, states.STARTED)
        with pytest.raises(errors.TimeoutError):
            backend.wait_for(task_id, timeout=0.2)

    def test_wait_for_raises_timeout_error_on_timeout(self, backend: ResultBackend) -> None:
        started = time.monotonic()
        with pytest.raises(errors.TimeoutError):
            backend.wait_for(new_id(), timeout=0.2)
        assert time.monotonic() - started < PROMPT

    # ---- Expiry -----------------------------------------------------------------------

    def test_result_expires_after_the_backend_expiry(
        self, backend: ResultBackend, request: pytest.FixtureRequest
    ) -> None:
        if not backend.capabilities.expiry:
            pytest.skip(f"{type(backend).__name__} declares expiry=False")
        make_backend: BackendFactory = request.getfixturevalue("make_backend")
        expiring = make_backend(expires=SHORT_EXPIRY)
        task_id, group_id = new_id(), new_id()
        stored = time.monotonic()
        expiring.store_result(task_id, 1, states.SUCCESS)
        expiring.save_group(group_id, [task_id])
        if time.monotonic() - stored < SHORT_EXPIRY:
            assert expiring.get_task_meta(task_id)["status"] == states.SUCCESS
        end = time.monotonic() + DEADLINE
        while expiring.get_task_meta(task_id)["status"] != states.PENDING:
            if time.monotonic() > end:
                pytest.fail(f"result stored with expires={SHORT_EXPIRY} still there after {DEADLINE}s")
            time.sleep(POLL)
        assert time.monotonic() - stored >= SHORT_EXPIRY - 0.05
        # The group was saved a moment after the result: it expires a moment after it
        # (stores with a whole-second clock may round that moment up to a second).
        while expiring.restore_group(group_id) is not None:
            if time.monotonic() > end:
                pytest.fail(f"group saved with expires={SHORT_EXPIRY} still there after {DEADLINE}s")
            time.sleep(POLL)
        assert backend.get_task_meta(task_id)["status"] == states.PENDING

    def test_result_without_expiry_is_kept(self, backend: ResultBackend) -> None:
        if backend.expires is not None:
            pytest.skip("this backend fixture sets an expiry")
        task_id = new_id()
        backend.store_result(task_id, 1, states.SUCCESS)
        assert backend.get_task_meta(task_id)["status"] == states.SUCCESS

    def test_revocations_are_read_in_order_from_a_cursor(self, backend: ResultBackend) -> None:
        _, start = backend.revocations_since(0)
        first, second = new_id(), new_id()
        backend.revoke([first])
        backend.revoke([second], terminate=True)
        found, cursor = backend.revocations_since(start)
        assert found[-2:] == [(first, False), (second, True)]
        assert backend.revocations_since(cursor) == ([], cursor)

    def test_worker_heartbeats_are_listed_until_forgotten(self, backend: ResultBackend) -> None:
        name = f"worker-{new_id()}@test"
        try:
            backend.heartbeat(name, {"pool": "solo"}, ttl=30.0)
        except NotImplementedError:
            pytest.skip(f"{type(backend).__name__} keeps no worker heartbeats (taskq inspect ping needs them)")
        seen = backend.workers()
        assert seen[name]["pool"] == "solo"
        backend.forget_worker(name)
        assert name not in backend.workers()

    def test_close_is_safe_twice(self, backend: ResultBackend) -> None:
        backend.get_task_meta(new_id())
        backend.close()
        backend.close()


__all__ = ["BackendFactory", "ResultBackendContract"]

"""The key-value store conformance kit: the storage primitives a :class:`KeyValueBackend` writes.

Core's result logic (results, groups, chord counters, revocations, worker heartbeats) is
built on ``get``, ``mget``, ``set``, ``delete`` and ``incr``; this kit checks those alone,
so that a failure names the primitive rather than a result behaviour built on it. A
key-value backend's tests run it beside :class:`~taskq.testing.conformance.ResultBackendContract`,
with the same ``backend`` fixture::

    class TestMongoBackend(ResultBackendContract, KeyValueStoreContract):
        @pytest.fixture
        def backend(self, mongo_url: str) -> Iterator[MongoBackend]: ...

Expiry is checked where the backend declares ``capabilities.expiry``: a key set with
``expires`` must read as missing within :attr:`KeyValueStoreContract.expiry_deadline`
seconds of its expiry (a store that deletes late must hide expired keys from reads
itself). ``incr`` is checked where it declares ``capabilities.chord_counter``. Tests use
fresh keys, so they need no cleanup between them.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from taskq.drivers.backend import KeyValueBackend

# Seconds a key set with an expiry is kept in the expiry tests.
SHORT_EXPIRY = 0.5
# A counter's expiry in the threaded test, in seconds: long enough never to lapse during it.
LONG_EXPIRY = 60.0
# Pause between two checks of a condition, in seconds.
POLL = 0.02
# Threads incrementing one counter at once, and increments per thread.
THREADS = 4
PER_THREAD = 25
# Every byte value once: a store must keep values as bytes, not as text.
ALL_BYTES = bytes(range(256))


def new_key() -> str:
    return f"taskq-kv-test-{uuid.uuid4().hex}"


class KeyValueStoreContract:
    """Every promise of the storage primitives. Subclass it and provide ``backend``."""

    #: Seconds after its expiry by which an expired key must read as missing.
    expiry_deadline: float = 10.0

    @pytest.fixture
    def backend(self) -> KeyValueBackend:
        raise NotImplementedError("provide a 'backend' fixture that returns a KeyValueBackend")

    # ---- get, set, delete -------------------------------------------------------------

    def test_a_key_never_set_reads_as_none(self, backend: KeyValueBackend) -> None:
        assert backend.get(new_key()) is None

    def test_a_value_set_reads_back_byte_for_byte(self, backend: KeyValueBackend) -> None:
        key = new_key()
        backend.set(key, ALL_BYTES)
        assert backend.get(key) == ALL_BYTES

    def test_setting_a_key_again_replaces_its_value(self, backend: KeyValueBackend) -> None:
        key = new_key()
        backend.set(key, b"first")
        backend.set(key, b"second")
        assert backend.get(key) == b"second"

    def test_delete_removes_a_key_and_deleting_a_missing_key_is_fine(self, backend: KeyValueBackend) -> None:
        key = new_key()
        backend.set(key, b"value")
        backend.delete(key)
        assert backend.get(key) is None
        backend.delete(key)

    def test_mget_answers_in_the_order_asked_with_none_for_missing_keys(self, backend: KeyValueBackend) -> None:
        first, second, missing = new_key(), new_key(), new_key()
        backend.set(first, b"one")
        backend.set(second, ALL_BYTES)
        assert backend.mget([second, missing, first, second]) == [ALL_BYTES, None, b"one", ALL_BYTES]
        assert backend.mget([]) == []

    # ---- incr ---------------------------------------------------------------------------

    def test_incr_counts_from_one_and_get_reads_the_count_as_digits(self, backend: KeyValueBackend) -> None:
        self.needs_counter(backend)
        key = new_key()
        assert [backend.incr(key) for _ in range(3)] == [1, 2, 3]
        assert backend.get(key) == b"3"
        assert backend.mget([key]) == [b"3"]

    def test_incr_after_delete_counts_from_one_again(self, backend: KeyValueBackend) -> None:
        self.needs_counter(backend)
        key = new_key()
        backend.incr(key)
        backend.incr(key)
        backend.delete(key)
        assert backend.incr(key) == 1

    @pytest.mark.parametrize("expires", [None, LONG_EXPIRY], ids=["without-expiry", "with-expiry"])
    def test_incr_is_atomic_across_threads(self, backend: KeyValueBackend, expires: float | None) -> None:
        self.needs_counter(backend)
        key = new_key()

        def count(_: int) -> list[int]:
            return [backend.incr(key, expires=expires) for _ in range(PER_THREAD)]

        with ThreadPoolExecutor(THREADS) as pool:
            counts = list(pool.map(count, range(THREADS)))
        assert all(mine == sorted(mine) for mine in counts)  # each thread sees the counter go up
        assert sorted(n for mine in counts for n in mine) == list(range(1, THREADS * PER_THREAD + 1))

    # ---- Expiry -------------------------------------------------------------------------

    def test_a_key_set_with_expiry_reads_as_missing_once_it_expired(self, backend: KeyValueBackend) -> None:
        self.needs_expiry(backend)
        key, kept = new_key(), new_key()
        backend.set(kept, b"kept")
        stored = time.monotonic()
        backend.set(key, b"brief", expires=SHORT_EXPIRY)
        if time.monotonic() - stored < SHORT_EXPIRY:
            assert backend.get(key) == b"brief"
        self.wait_until_gone(backend, key, stored)
        assert time.monotonic() - stored >= SHORT_EXPIRY - 0.05
        assert backend.mget([key, kept]) == [None, b"kept"]

    def test_setting_a_key_again_without_expiry_keeps_it(self, backend: KeyValueBackend) -> None:
        self.needs_expiry(backend)
        key, probe = new_key(), new_key()
        backend.set(key, b"brief", expires=SHORT_EXPIRY)
        backend.set(key, b"lasting")
        stored = time.monotonic()
        backend.set(probe, b"brief", expires=SHORT_EXPIRY)
        self.wait_until_gone(backend, probe, stored)
        assert backend.get(key) == b"lasting"

    def test_a_counter_with_expiry_counts_from_one_again_once_it_expired(self, backend: KeyValueBackend) -> None:
        self.needs_counter(backend)
        self.needs_expiry(backend)
        key = new_key()
        stored = time.monotonic()
        assert backend.incr(key, expires=SHORT_EXPIRY) == 1
        self.wait_until_gone(backend, key, stored)
        assert backend.incr(key, expires=SHORT_EXPIRY) == 1

    # ---- Helpers ------------------------------------------------------------------------

    def wait_until_gone(self, backend: KeyValueBackend, key: str, stored: float) -> None:
        """Return once ``key``, stored at ``stored`` with ``SHORT_EXPIRY``, reads as missing; fail after the bound."""
        end = stored + SHORT_EXPIRY + self.expiry_deadline
        while backend.get(key) is not None:
            if time.monotonic() > end:
                pytest.fail(
                    f"{type(backend).__name__}: {key} set with expires={SHORT_EXPIRY} still reads "
                    f"{self.expiry_deadline}s after it expired; hide expired keys from reads, or declare expiry=False"
                )
            time.sleep(POLL)

    @staticmethod
    def needs_counter(backend: KeyValueBackend) -> None:
        if not backend.capabilities.chord_counter:
            pytest.skip(f"{type(backend).__name__} declares chord_counter=False: its incr is not atomic")

    @staticmethod
    def needs_expiry(backend: KeyValueBackend) -> None:
        if not backend.capabilities.expiry:
            pytest.skip(f"{type(backend).__name__} declares expiry=False")


__all__ = ["KeyValueStoreContract"]

"""How results are stored: compression, a size limit, and values that cannot be stored."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from taskq import App, states
from taskq.builtins.memory_drivers import MemoryBackend
from taskq.drivers.backend import COMPRESSIONS, BackendSettings, ResultBackend, compress, decompress
from taskq.errors import ConfigError, SerializationError

TIMEOUT = 10.0


@pytest.mark.parametrize("codec", sorted(COMPRESSIONS))
def test_a_compressed_record_round_trips_and_starts_with_its_magic(codec: str, memory_url: str) -> None:
    backend = MemoryBackend(memory_url, compression=codec)
    backend.store_result("t1", "x" * 5000, states.SUCCESS)
    raw = backend.get(backend.task_key("t1"))
    assert raw is not None
    assert len(raw) < 1000
    assert raw.startswith(COMPRESSIONS[codec][1])
    assert backend.get_task_meta("t1")["result"] == "x" * 5000


def test_records_written_before_compression_stay_readable(memory_url: str) -> None:
    MemoryBackend(memory_url).store_result("old", 41, states.SUCCESS)
    assert MemoryBackend(memory_url, compression="zlib").get_task_meta("old")["result"] == 41
    assert decompress(b'{"status":"SUCCESS"}') == b'{"status":"SUCCESS"}'


def test_an_unknown_compression_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="bzip2, gzip, lzma, zlib"):
        compress(b"data", "snappy")


def test_the_app_builds_its_backend_with_result_compression_max_size_and_broker_url(memory_url: str) -> None:
    app = App("c", broker=memory_url, read_config=False, result_compression="gzip", result_max_size=1000)
    backend = app.new_backend()
    assert (backend.compression, backend.max_size, backend.broker_url) == ("gzip", 1000, memory_url)


def test_a_result_over_the_size_limit_fails_the_task_with_advice(
    memory_url: str, start_worker: Callable[..., object]
) -> None:
    app = App("big", broker=memory_url, read_config=False, result_max_size=2000)

    @app.task
    def huge() -> str:
        return "y" * 10_000

    start_worker(app)
    result = huge.delay()
    with pytest.raises(SerializationError, match="more than result_max_size"):
        result.get(timeout=TIMEOUT)
    assert result.state == states.FAILURE


def test_a_result_that_cannot_be_serialized_fails_the_task_instead_of_poisoning_the_store(
    memory_url: str, start_worker: Callable[..., object]
) -> None:
    app = App("odd", broker=memory_url, read_config=False)

    @app.task
    def odd() -> object:
        return object()

    start_worker(app)
    result = odd.delay()
    with pytest.raises(SerializationError, match="could not be stored"):
        result.get(timeout=TIMEOUT)


def test_backend_settings_name_every_keyword_the_backend_constructor_takes() -> None:
    parameters = inspect.signature(ResultBackend.__init__).parameters.values()
    keywords = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords == set(BackendSettings.__annotations__)


def test_a_subclass_prepares_its_own_state_in_setup_after_the_settings_are_stored(memory_url: str) -> None:
    seen: list[tuple[str, int | None]] = []

    class Recording(MemoryBackend):
        def setup(self) -> None:
            super().setup()
            seen.append((self.url, self.max_size))

    Recording(memory_url, max_size=123)
    assert seen == [(memory_url, 123)]

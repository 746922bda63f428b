"""An unreachable memcached is reported with what to check; one that restarts is waited for."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from taskq import states
from taskq.errors import BackendUnavailableError
from taskq.testing.conformance import ServerProcess, free_port
from taskq_memcached.backend import MemcachedBackend

from ..conftest import start_memcached


@pytest.fixture
def private_port(memcached_server: tuple[str, int]) -> Iterator[int]:
    yield free_port()


def test_unreachable_memcached_raises_backend_unavailable_with_the_masked_url() -> None:
    backend = MemcachedBackend(f"cache+memcached://user:secret@127.0.0.1:{free_port()}/")
    with pytest.raises(BackendUnavailableError, match=r"user:\*\*\*\*@127\.0\.0\.1.*is memcached running") as info:
        backend.get_task_meta(uuid.uuid4().hex)
    assert "secret" not in str(info.value)


def test_a_memcached_restart_mid_run_is_retried(private_port: int) -> None:
    server = start_memcached(private_port)
    backend = MemcachedBackend(f"memcached://127.0.0.1:{private_port}/")
    try:
        task_id = uuid.uuid4().hex
        backend.store_result(task_id, 1, states.SUCCESS)
        server.stop()
        restarted: list[ServerProcess] = []
        timer = threading.Timer(0.5, lambda: restarted.append(start_memcached(private_port)))
        timer.start()
        try:
            backend.store_result(task_id, 2, states.SUCCESS)  # fails, backs off, lands on the new server
        finally:
            timer.join()
        assert backend.get_task_meta(task_id)["result"] == 2
    finally:
        backend.close()
        server.stop()
        for other in restarted:
            other.stop()

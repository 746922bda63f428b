"""Result writes share a few connections: a green pool's task per green thread must not open one each.

On gevent and eventlet, ``threading.local`` is per green thread and every task runs in a
new one; so are the short-lived threads of an executor. Writes take a connection from
the backend's pool for the one write and give it back: the connections stay as many as
write at once, and each writer still reads what it stored.
"""

from __future__ import annotations

import os
import threading
import uuid

from taskq import states
from taskq_redis.backend import RedisBackend

# Seconds a thread of these tests may take.
DEADLINE = 30.0
WRITERS = 60


def open_sockets() -> int:
    """The sockets this process holds open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except FileNotFoundError:  # the directory listing's own descriptor, closed since
            continue
    return count


def test_results_stored_by_many_short_lived_threads_share_a_connection(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, {"global_keyprefix": prefix})
    reader = RedisBackend(redis_url, {"global_keyprefix": prefix})
    ids = [str(uuid.uuid4()) for _ in range(WRITERS)]
    try:
        backend.store_result(ids[0], 0, states.SUCCESS)  # the client's own connections are open from here
        before = open_sockets()
        for number, task_id in enumerate(ids[1:], start=1):
            writer = threading.Thread(target=backend.store_result, args=(task_id, number, states.SUCCESS))
            writer.start()
            writer.join(DEADLINE)
            assert not writer.is_alive()
        assert open_sockets() - before <= 1, "a connection per writing thread"
        backend.close()  # reads what it is owed
        assert [reader.get_task_meta(task_id)["result"] for task_id in ids] == list(range(WRITERS))
    finally:
        backend.close()
        reader.close()


def test_threads_writing_at_once_each_read_what_they_stored(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, {"global_keyprefix": prefix})
    start = threading.Barrier(20, timeout=DEADLINE)
    seen: dict[int, object] = {}

    def write_then_read(number: int) -> None:
        task_id = str(uuid.uuid4())
        start.wait()
        for round_number in range(20):  # each round takes whichever connection is free
            backend.store_result(task_id, [number, round_number], states.SUCCESS)
            seen[number] = backend.get_task_meta(task_id)["result"]
            if seen[number] != [number, round_number]:
                return

    writers = [threading.Thread(target=write_then_read, args=(number,)) for number in range(20)]
    try:
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(DEADLINE)
        assert seen == {number: [number, 19] for number in range(20)}
        assert len(backend._wires) <= 20  # no more connections than writers at once
    finally:
        backend.close()

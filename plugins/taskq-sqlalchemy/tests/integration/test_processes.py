"""Several processes share one table: atomic chord counters, and forked children."""

from __future__ import annotations

import multiprocessing
import os

from taskq import states
from taskq_sqlalchemy.backend import DatabaseBackend

PROCESSES = 4
INCREMENTS = 25
# Seconds to wait for a child process.
DEADLINE = 60.0


def _count(url: str, table: str, group_id: str, out: multiprocessing.Queue[list[int]]) -> None:
    backend = DatabaseBackend(url, {"table": table})
    try:
        out.put([backend.incr_chord_counter(group_id) for _ in range(INCREMENTS)])
    finally:
        backend.close()


def test_chord_counter_is_atomic_across_processes(db_url: str, table_name: str, drop_table: None) -> None:
    DatabaseBackend(db_url, {"table": table_name}).create_tables()
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[list[int]] = context.Queue()
    children = [context.Process(target=_count, args=(db_url, table_name, "g1", out)) for _ in range(PROCESSES)]
    for child in children:
        child.start()
    seen = [value for _ in children for value in out.get(timeout=DEADLINE)]
    for child in children:
        child.join(DEADLINE)
        assert child.exitcode == 0
    assert sorted(seen) == list(range(1, PROCESSES * INCREMENTS + 1))


def test_a_forked_child_uses_the_backend_and_the_parent_still_works(backend: DatabaseBackend) -> None:
    backend.store_result("before-fork", 1, states.SUCCESS)  # the pool now holds a connection
    pid = os.fork()
    if pid == 0:  # the child: any failure shows as a non-zero exit status
        code = 1
        try:
            assert backend.get_task_meta("before-fork")["result"] == 1
            backend.store_result("from-child", 2, states.SUCCESS)
            backend.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.get_task_meta("from-child")["result"] == 2
    backend.store_result("after-fork", 3, states.SUCCESS)
    assert backend.get_task_meta("after-fork")["result"] == 3
    assert backend.incr_chord_counter("after-fork") == 1

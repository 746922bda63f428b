"""The fork-safety kit: a driver used by a parent process keeps working in children forked under load.

A prefork worker forks its children from a process whose other threads are using the
result backend and the transport at that moment (the consumer claims, a child's
predecessor stored a result, a waiter blocks). A child inherits every connection, lock
and library state of the parent, but none of its other threads. Each test here

1. uses the driver in the parent (connections open; a waiting thread where the driver
   waits), and keeps :data:`HAMMER_THREADS` threads using it without pause;
2. forks :data:`CHILDREN` children one after another while they do, and each child uses
   the same driver instance (stores and reads a result; publishes, claims and acks a
   message) and must finish within :data:`CHILD_DEADLINE` seconds without an error;
3. checks that the parent's threads met no error and that the parent still works.

A child that hangs (a lock inherited held, SQLite state inherited mid-statement, a
socket shared with the parent and read by both) is killed at the deadline and fails the
test. Add the contract to the classes that already provide the ``backend`` or
``transport`` fixture::

    class TestRedisBackend(ResultBackendContract, KeyValueStoreContract, BackendForkSafetyContract): ...

    class TestRedisTransport(MultiProcessTransportContract, TransportForkSafetyContract): ...

POSIX only (``os.fork``); skipped where it is missing.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator

import pytest

from taskq import states
from taskq.drivers.backend import KeyValueBackend, ResultBackend
from taskq.drivers.transport import Delivery, Message, Transport

# Children forked, one after another, while the parent's threads use the driver.
CHILDREN = 8
# Threads of the parent that use the driver without pause while it forks.
HAMMER_THREADS = 2
# Seconds a child has to do its work; past it the child is killed and the test fails.
CHILD_DEADLINE = 20.0
# Seconds the parent's threads keep going between two forks, so each fork lands mid-work.
BETWEEN_FORKS = 0.05
# Seconds before the deadline at which a child still working writes its threads' stacks.
STACK_DUMP_LEAD = 3.0
# Seconds after which a child's own thread stores the result the child waits for.
STORE_DELAY = 0.2
# Longest error text a child sends back, in bytes.
REPORT_MAX = 4000


class _Hammer:
    """Threads that run ``step`` until stopped, keeping the first error each met."""

    def __init__(self, steps: list[Callable[[], None]]) -> None:
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.rounds = 0
        self._threads = [threading.Thread(target=self._run, args=(step,), daemon=True) for step in steps]

    def _run(self, step: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                step()
            except Exception:
                self.errors.append(traceback.format_exc())
                return
            self.rounds += 1

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        for thread in self._threads:
            thread.start()
        try:
            yield
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(CHILD_DEADLINE)
        assert not [t for t in self._threads if t.is_alive()], "a thread of the parent is stuck using the driver"


def fork_and_check(work: Callable[[int], None], children: int = CHILDREN) -> list[str]:
    """Fork ``children`` children one after another; each runs ``work(number)``. Returns their failures."""
    if not hasattr(os, "fork"):
        pytest.skip("this platform has no os.fork")
    failures: list[str] = []
    for number in range(children):
        time.sleep(BETWEEN_FORKS)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.close(read_fd)
                signal.alarm(int(CHILD_DEADLINE) + 5)  # a last resort if the parent's kill is lost
                # where a hung child is stuck, sent before the parent kills it
                faulthandler.dump_traceback_later(CHILD_DEADLINE - STACK_DUMP_LEAD, file=write_fd)
                work(number)
                code = 0
            except BaseException:
                with contextlib.suppress(OSError):
                    os.write(write_fd, traceback.format_exc().encode()[-REPORT_MAX:])
            finally:
                os._exit(code)
        os.close(write_fd)
        failures.extend(_await_child(pid, read_fd, number))
        if failures:
            break  # one is enough, and each hung child costs the whole deadline
    return failures


def _await_child(pid: int, read_fd: int, number: int) -> list[str]:
    deadline = time.monotonic() + CHILD_DEADLINE
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return [f"child {number} did not finish within {CHILD_DEADLINE}s (killed); where it was:\n{_read_all(read_fd)}"]
    report = _read_all(read_fd)
    if status != 0:
        return [f"child {number} failed (status {status}): {report}"]
    return []


def _read_all(fd: int) -> str:
    """What a finished child wrote to ``fd``, which is closed."""
    report = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 65536):
            report += chunk
    os.close(fd)
    return report.decode(errors="replace")


class BackendForkSafetyContract:
    """A result backend stays usable in children forked while the parent uses it. Provide ``backend``.

    A backend whose instance only one thread may read at a time (rpc: one reply-queue
    consumer) sets :attr:`threads_share_one_instance` to ``False``: one parent thread uses
    it while the parent forks, instead of several and a waiter.
    """

    threads_share_one_instance = True
    #: ``False`` where results are private to the process that waits for them (rpc).
    children_read_the_parents_results = True

    def test_children_forked_under_load_store_and_read_results(self, backend: ResultBackend) -> None:
        warm = uuid.uuid4().hex
        backend.store_result(warm, "parent", states.SUCCESS)  # connections open before any fork
        assert backend.get_task_meta(warm)["result"] == "parent"

        def store_and_read() -> None:
            task_id = uuid.uuid4().hex
            backend.store_result(task_id, {"from": "parent"}, states.SUCCESS)
            assert backend.get_task_meta(task_id)["status"] == states.SUCCESS
            if isinstance(backend, KeyValueBackend):  # a chord counter: some stores lock for it
                assert backend.incr(f"fork-counter-{task_id}") == 1

        def wait() -> None:  # a waiting thread, as AsyncResult.get() has
            backend.wait_for_change([warm], 0.05)

        if not self.threads_share_one_instance:
            steps = [store_and_read]
        else:
            steps = [store_and_read] * HAMMER_THREADS
            if backend.capabilities.push_wait:
                steps.append(wait)
        hammer = _Hammer(steps)

        def child(number: int) -> None:
            task_id = f"fork-child-{number}-{uuid.uuid4().hex}"
            backend.store_result(task_id, {"child": number, "pid": os.getpid()}, states.SUCCESS)
            meta = backend.get_task_meta(task_id)
            assert meta["status"] == states.SUCCESS, meta
            assert meta["result"] == {"child": number, "pid": os.getpid()}, meta
            if isinstance(backend, KeyValueBackend):  # several keys at once (S3 reads them on a thread pool)
                key = f"fork-child-{number}-{uuid.uuid4().hex}"
                backend.set(key, b"from the child")
                assert backend.mget([key, f"{key}-missing"]) == [b"from the child", None]
                assert backend.incr(f"{key}-counter") == 1
            if self.children_read_the_parents_results:
                assert backend.get_task_meta(warm)["result"] == "parent"
            # a wait in the child, woken by a result a thread of the child stores meanwhile
            later = f"fork-child-{number}-later-{uuid.uuid4().hex}"
            storer = threading.Timer(STORE_DELAY, backend.store_result, (later, "later", states.SUCCESS))
            storer.start()
            assert backend.wait_for(later, timeout=CHILD_DEADLINE / 2)["result"] == "later"
            storer.join()

        with hammer.running():
            failures = fork_and_check(child)
        assert not failures, "\n".join(failures)
        assert not hammer.errors, "\n".join(hammer.errors)
        assert hammer.rounds > 0
        store_and_read()  # and the parent goes on


class TransportForkSafetyContract:
    """A transport stays usable in children forked while the parent uses it. Provide ``transport`` and ``queue``."""

    def test_children_forked_under_load_publish_claim_and_ack(
        self, transport: Transport, other: Transport, queue: str
    ) -> None:
        parent_queue = f"{queue}-parent"
        transport.publish(parent_queue, _message())  # connections open before any fork
        assert _claim_one(transport, parent_queue)

        def publish_and_take(instance: Transport) -> Callable[[], None]:
            def step() -> None:
                instance.publish(parent_queue, _message())
                taken = instance.claim([parent_queue], 10)
                if taken:
                    instance.ack(taken)
                else:
                    instance.wait([parent_queue], 0.02)

            return step

        hammer = _Hammer([publish_and_take(transport), publish_and_take(other)])

        def child(number: int) -> None:
            own = f"{queue}-child-{number}"
            sent = _message()
            transport.publish(own, sent)
            deliveries = _claim_one(transport, own)
            assert [d.message.headers["id"] for d in deliveries] == [sent.headers["id"]]
            transport.ack(deliveries)
            assert not transport.claim([own], 10)

        with hammer.running():
            failures = fork_and_check(child)
        assert not failures, "\n".join(failures)
        assert not hammer.errors, "\n".join(hammer.errors)
        assert hammer.rounds > 0
        after = f"{queue}-after"  # a queue the other instance does not consume (it may hold prefetched ones)
        transport.publish(after, _message())  # and the parent goes on
        assert _claim_one(transport, after)


def _message() -> Message:
    task_id = uuid.uuid4().hex
    return Message(
        body=b'[[], {}, {"callbacks": null}]',
        headers={"lang": "py", "task": "tests.fork", "id": task_id, "root_id": task_id},
        content_type="application/json",
        content_encoding="utf-8",
        properties={"correlation_id": task_id},
    )


def _claim_one(transport: Transport, queue: str) -> list[Delivery]:
    deadline = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < deadline:
        found = transport.claim([queue], 10)
        if found:
            return list(found)
        transport.wait([queue], 0.2)
    pytest.fail(f"nothing could be claimed from {queue} within {CHILD_DEADLINE}s")


__all__ = ["BackendForkSafetyContract", "TransportForkSafetyContract", "fork_and_check"]

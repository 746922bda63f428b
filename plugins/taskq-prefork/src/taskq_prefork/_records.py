"""What the prefork parent keeps about each child and each job, and small OS helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Literal

import billiard

from taskq.drivers import pool
from taskq_prefork._child import ChildConfig, child_main

State = Literal["idle", "busy", "retiring", "dying"]
#: A job and its outcome, reported once the lock is released: (job, ok, value or exception).
Report = tuple["Job", bool, object]


class Job(pool.Job):
    """A job as the parent tracks it (set by :meth:`PreforkPool.submit`)."""

    __slots__ = ("deadline", "fate", "payload")

    payload: bytes  # (target, args, soft limit), pickled for the child
    deadline: float | None  # time.monotonic() of the hard limit, once a child runs it
    fate: str | None  # why the job is being stopped: "terminated", or None


class Child:
    """A child process as the parent tracks it: its pipes, state and current job."""

    __slots__ = (
        "buffer",
        "job",
        "job_fd",
        "kill_at",
        "lifeline_fd",
        "name",
        "outcome_fd",
        "pid",
        "process",
        "sending",
        "state",
        "watch_fd",
        "watch_owned",
    )

    def __init__(self, process: billiard.Process, name: str, job_fd: int, outcome_fd: int) -> None:
        self.process = process
        self.name = name
        self.pid: int = process.pid
        self.job_fd = job_fd
        self.outcome_fd = outcome_fd
        self.lifeline_fd = -1  # the write end of the lifeline: closed only once the child has exited
        self.watch_fd: int = -1
        self.watch_owned = False  # a pidfd this pool opened (else billiard's sentinel)
        self.state: State = "idle"
        self.job: Job | None = None
        self.buffer = bytearray()
        self.kill_at: float | None = None
        self.sending = False  # a thread is writing a job: job_fd must stay open

    @classmethod
    def fork(
        cls,
        name: str,
        inherited: Sequence[int],
        max_tasks: int | None,
        max_memory: int | None,
        on_start: Callable[[], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> Child:
        """Fork a child with its pipes; it closes ``inherited`` (the parent's other descriptors).

        Besides the job and outcome pipes, a *lifeline*: a pipe nobody writes to, whose
        write end only the parent holds, so that the child dies with the parent (see
        :func:`._child.die_with_parent`).
        """
        job_r, job_w = os.pipe()
        outcome_r, outcome_w = os.pipe()
        lifeline_r, lifeline_w = os.pipe()
        config = ChildConfig(
            name=name,
            job_fd=job_r,
            outcome_fd=outcome_w,
            close_fds=tuple(fd for fd in (*inherited, job_w, outcome_r, lifeline_w) if fd >= 0),
            max_tasks=max_tasks,
            max_memory=max_memory,
            parent_pid=os.getpid(),
            lifeline_fd=lifeline_r,
            parent_death_signal=threading.current_thread() is threading.main_thread(),
            on_start=on_start,
            on_exit=on_exit,
        )
        process = billiard.get_context("fork").Process(target=child_main, args=(config,), name=name, daemon=True)
        try:
            process.start()
        finally:
            os.close(job_r)
            os.close(outcome_w)
            os.close(lifeline_r)
        os.set_blocking(outcome_r, False)
        child = cls(process, name, job_w, outcome_r)
        child.lifeline_fd = lifeline_w
        try:
            child.watch_fd = os.pidfd_open(child.pid)
            child.watch_owned = True
        except (AttributeError, OSError):
            child.watch_fd = process.sentinel
        return child

    def fds(self) -> list[int]:
        fds = [self.job_fd, self.outcome_fd, self.watch_fd, self.lifeline_fd]
        sentinel = self.process.sentinel if self.watch_owned else None
        return [fd for fd in [*fds, sentinel] if fd is not None and fd >= 0]


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def send_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def close_fd(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass


def call_all(reports: list[Report]) -> None:
    """Report what the lock-holding code collected (callbacks never run under the pool's lock)."""
    for job, ok, outcome in reports:
        job.report(ok, outcome)


__all__ = ["Child", "Job", "Report", "State", "call_all", "close_fd", "describe_exit", "drain", "send_signal"]

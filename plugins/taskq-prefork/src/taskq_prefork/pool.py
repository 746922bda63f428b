"""The prefork pool: each task runs in a child process, forked once and reused.

Design. Every child is a ``billiard.Process`` (fork start method, so it inherits the
loaded app and task registry) with two private pipes: the parent writes a job to one,
the child writes the outcome to the other. The parent always knows which child runs
which job, because it chose the child: a job goes only to an idle child, so

* ``free_slots`` is exact (idle children, bounded by the concurrency), never a guess
  about a shared queue that some child may or may not have taken a job from;
* a dead child's job is known without asking anyone: it is reported as
  :class:`~taskq.errors.WorkerLostError`, the child is replaced, and the pool goes on;
* ``terminate_job`` and the hard time limit signal exactly the right process.

The parent waits (``selectors``, no polling) on the outcome pipes, on a pidfd per child
(the billiard sentinel where pidfds are missing), and on a wake-up pipe, with the nearest
hard deadline as its timeout; each such *turn* reads outcomes, hands queued jobs to
children that became idle, reaps and replaces dead children, kills children past their
hard limit, and calls the callbacks. While the worker is busy it takes the turns in its
own thread (:meth:`poll`), so a task costs no hop between threads; while it waits on the
broker (after :meth:`release`) a supervisor thread takes them (:mod:`._turns`). ``apply``
writes the job to an idle child directly from the caller's thread, or queues it (``room``:
twice the concurrency) for the next child to free, which gets it in the same turn that
read the outcome; a task costs one pickle and one pipe write each way. billiard's ``Pool`` is not
used: its shared job queue hides which child holds which job, which is what the
accounting above needs, and its result and timeout threads add a hop per task.

Results are stored by the child (``trace_task`` runs there and writes through the
child's own backend connection); the parent only receives the small
:class:`~taskq.worker.trace.TraceOutcome`.

Time limits. The soft limit is armed by the child itself (``setitimer``); its ``SIGALRM``
raises :class:`~taskq.errors.SoftTimeLimitExceeded` inside the task (``SIGUSR1`` does the
same, as in Celery). The hard limit is kept by the parent: at the deadline the child is
killed with ``SIGKILL``, replaced, and the job reported as
:class:`~taskq.errors.TimeLimitExceeded`. ``terminate_job`` sends ``SIGTERM`` and
``SIGKILL`` after :data:`KILL_GRACE` seconds; the job is reported as
:class:`~taskq.errors.Terminated`.

Replacement happens before the outcome that freed the slot is reported, so when the
worker hears a job ended, the pool has room again. Children ignore ``SIGINT`` (Ctrl-C is
the parent's) and reset every other handler the parent installed.

The module stays whole past 500 lines: every method keeps one state consistent under one
lock (the children, which job each runs, the queued jobs and the counts), and the turn
that changes it most reads like the rest. What is an idea of its own lives beside it:
the child's side and the frames (:mod:`._child`), the records (:mod:`._records`), who
takes the turns (:mod:`._turns`).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import selectors
import signal
import threading
import time
from collections import deque

from taskq.drivers import pool
from taskq.drivers.pool import JobNotStartedError, Pool, PoolCapabilities
from taskq.errors import TaskqError, Terminated, TimeLimitExceeded, WorkerLostError
from taskq_prefork._child import read_frames, write_frame
from taskq_prefork._records import Child, Job, Report, call_all, close_fd, describe_exit, send_signal
from taskq_prefork._turns import Turns

logger = logging.getLogger(__name__)

# Seconds between SIGTERM and SIGKILL when a child is told to stop (terminate, cold stop).
KILL_GRACE = 1.0
# Seconds a child that was asked to leave (max tasks, max memory, shrink) may take to exit.
RETIRE_GRACE = 10.0
# Longest warm stop, in seconds: running jobs get this long to finish, then are killed.
STOP_TIMEOUT = 10.0
# Seconds stop() waits for children to exit before killing them, and for the supervisor.
JOIN_TIMEOUT = 3.0
# Jobs queued in the parent per child, beyond the running ones: enough to keep children
# busy through the consumer's round trip to the broker for the next batch.
QUEUE_PER_CHILD = 2
# Bytes read from an outcome pipe at once.
READ_SIZE = 64 * 1024


class PreforkPool(Pool):
    """Tasks run in child processes; see the module docstring."""

    capabilities = PoolCapabilities(
        soft_time_limit=True,
        hard_time_limit=True,
        max_tasks_per_child=True,
        max_memory_per_child=True,
        terminate=True,
        resize=True,
    )
    job_class = Job

    def __init__(self, concurrency: int = 1, **options: object) -> None:
        super().__init__(concurrency, **options)  # type: ignore[arg-type]  # Pool's keyword options
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._children: list[Child] = []
        self._idle: deque[Child] = deque()
        self._by_job: dict[str, Child] = {}
        self._pending: deque[Job] = deque()
        self._busy = 0
        self._counter = 0
        self._started = False
        self._stopping = False  # apply refuses new jobs
        self._closing = False  # the supervisor leaves; no more children are made
        self._next_wake = float("inf")
        self._selector: selectors.BaseSelector | None = None
        self._turns = Turns(self._turn, lambda: self._closing)  # who takes turns, and the wake-up pipe
        self._wake_fds: tuple[int, int] = (-1, -1)
        self._read_buffer = bytearray(READ_SIZE)

    # ---- Life cycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._selector = selectors.DefaultSelector()
        self._wake_fds = self._turns.open()
        self._selector.register(self._turns.wake_fd, selectors.EVENT_READ, None)
        for _ in range(self.concurrency):
            self._add_child(self._spawn())
        self._turns.start_supervisor()
        logger.info("prefork pool started %d child process(es)", self.concurrency)

    def stop(self, *, wait: bool = True) -> None:
        if not self._started or self._closing:
            return
        with self._lock:
            self._stopping = True
        self.release()  # the supervisor reports what is still running
        if wait:
            deadline = time.monotonic() + STOP_TIMEOUT
            with self._changed:
                finished = self._changed.wait_for(
                    lambda: not (self._busy or self._pending), max(0.0, deadline - time.monotonic())
                )
            if not finished:
                logger.warning(
                    "prefork pool: %d job(s) still running after %.0fs; killing them", self._busy, STOP_TIMEOUT
                )
        with self._lock:
            self._closing = True
        self._turns.stop(JOIN_TIMEOUT)
        self._teardown()

    def _teardown(self) -> None:
        """Close every child: idle ones leave on end of file, busy ones are terminated."""
        reports: list[Report] = []
        with self._lock:
            children = list(self._children)
            for child in children:
                if child.job is not None:
                    reports.append((child.job, False, self._stop_error(child.job)))
                    child.job = None
                if child.state == "busy" or child.state == "dying":
                    send_signal(child.pid, signal.SIGTERM)
                child.state = "dying"
                self._close_job_fd(child)
            while self._pending:
                # Queued here, never written to a child: the worker gives these back.
                job = self._pending.popleft()
                reports.append(
                    (job, False, JobNotStartedError(f"the prefork pool stopped before task {job.job_id} started"))
                )
            self._busy = 0
            self._idle.clear()
            self._by_job.clear()
        call_all(reports)
        deadline = time.monotonic() + JOIN_TIMEOUT
        for child in children:
            child.process.join(max(0.0, deadline - time.monotonic()))
        for child in children:
            if child.process.exitcode is None:
                logger.warning("prefork pool: child %s (pid %d) did not exit; killing it", child.name, child.pid)
                send_signal(child.pid, signal.SIGKILL)
                child.process.join(JOIN_TIMEOUT)
        with self._lock:
            for child in children:
                self._forget(child)
            if self._selector is not None:
                self._selector.close()
            self._turns.close()

    @staticmethod
    def _stop_error(job: Job) -> BaseException:
        if job.fate == "terminated":
            return Terminated(f"task {job.job_id} was terminated")
        return WorkerLostError(f"the prefork pool stopped before task {job.job_id} finished")

    # ---- Running jobs ---------------------------------------------------------------

    def submit(self, job: pool.Job) -> None:
        assert isinstance(job, Job)
        try:
            job.payload = pickle.dumps((job.target, job.args, job.soft_time_limit), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            job.report(
                False, TaskqError(f"cannot send task {job.job_id} to a pool process: {type(exc).__name__}: {exc}")
            )
            return
        job.deadline = job.fate = None
        child: Child | None = None
        with self._lock:
            if self._stopping or not self._started:
                refused = True
            else:
                refused = False
                child = self._claim_idle(job)
                if child is None:
                    self._pending.append(job)
        if refused:
            job.report(False, WorkerLostError(f"the prefork pool is not running; task {job.job_id} was not run"))
            return
        if child is not None:
            self._send(child, job)
            if job.deadline is not None and job.deadline < self._next_wake:
                self._turns.wake()

    def _claim_idle(self, job: Job) -> Child | None:
        """Give ``job`` to an idle child (lock held); None when none may take it."""
        if not self._idle or self._busy >= self.concurrency:
            return None
        child = self._idle.popleft()
        child.state = "busy"
        child.job = job
        child.sending = True
        self._busy += 1
        if job.job_id is not None:
            self._by_job[job.job_id] = child
        if job.hard_time_limit:
            job.deadline = time.monotonic() + job.hard_time_limit
        return child

    def _send(self, child: Child, job: Job) -> None:
        failed = False
        try:
            write_frame(child.job_fd, job.payload)
        except OSError as exc:
            failed = True
            logger.debug("could not send a job to %s (pid %d): %s", child.name, child.pid, exc)
        lost: BaseException | None = None
        with self._lock:
            child.sending = False
            if child.job is job and job.fate is None and (failed or child.state == "dying"):
                # The child died around this write. If the write failed, the job never
                # reached it and waits for the replacement; otherwise it may have started.
                if child.state != "dying":
                    logger.error("prefork pool: %s (pid %d) exited while idle; replacing it", child.name, child.pid)
                    self._set_dying(child, None)
                child.job = None
                if failed:
                    job.deadline = None
                    self._pending.appendleft(job)
                else:
                    lost = WorkerLostError(
                        f"the pool process {child.name} (pid {child.pid}) exited as it was given task {job.job_id}"
                    )
            if child.state == "retiring" or child.state == "dying":
                self._close_job_fd(child)
        if lost is not None:
            job.report(False, lost)
        if failed:
            self._turns.wake()

    @property
    def free_slots(self) -> int:
        return max(0, min(len(self._idle), self.concurrency - self._busy) - len(self._pending))

    @property
    def room(self) -> int:
        # Up to QUEUE_PER_CHILD x concurrency jobs wait here for the next child to free:
        # each is written to that child as its outcome is read, without waiting for the
        # consumer. The queue is topped up once it has emptied, so the worker hands jobs
        # over (and acks them early) a batch at a time rather than one per finished task.
        free = min(len(self._idle), self.concurrency - self._busy)
        if self._pending and not free:
            return 0
        return max(0, free + QUEUE_PER_CHILD * self.concurrency - len(self._pending))

    @property
    def running(self) -> int:
        return self._busy

    def terminate_job(self, job_id: str) -> bool:
        reports: list[Report] = []
        with self._lock:
            child = self._by_job.pop(job_id, None)
            if child is None:
                for job in self._pending:
                    if job.job_id == job_id:
                        self._pending.remove(job)
                        reports.append((job, False, Terminated(f"task {job_id} was terminated")))
                        break
            elif child.job is not None:
                child.job.fate = "terminated"
                self._set_dying(child, time.monotonic() + KILL_GRACE)
                send_signal(child.pid, signal.SIGTERM)
        call_all(reports)
        if child is not None:
            self._turns.wake()
            return True
        return bool(reports)

    def grow(self, n: int = 1) -> None:
        with self._lock:
            self.concurrency += max(0, int(n))
        self._turns.wake()

    def shrink(self, n: int = 1) -> None:
        with self._lock:
            self.concurrency = max(1, self.concurrency - max(0, int(n)))
        self._turns.wake()

    def info(self) -> dict[str, object]:
        info = super().info()
        with self._lock:
            info["processes"] = [child.pid for child in self._children if child.state in ("idle", "busy")]
        info["max_tasks_per_child"] = self.max_tasks_per_child
        info["max_memory_per_child"] = self.max_memory_per_child
        return info

    # ---- Children -------------------------------------------------------------------

    def _spawn(self) -> Child:
        """Fork a child (outside the lock; only start() and the supervisor do this)."""
        if self.before_create_process is not None:
            self.before_create_process()
        with self._lock:
            self._counter += 1
            name = f"ForkPoolWorker-{self._counter}"
            inherited = [fd for child in self._children for fd in child.fds()]
        selector_fd = getattr(self._selector, "fileno", lambda: -1)()  # epoll and kqueue have an fd
        child = Child.fork(
            name,
            [*inherited, *self._wake_fds, selector_fd],
            self.max_tasks_per_child,
            self.max_memory_per_child,
            self.process_init,
            self.process_shutdown,
        )
        logger.debug("prefork pool: started %s (pid %d)", name, child.pid)
        return child

    def _add_child(self, child: Child) -> None:
        with self._lock:
            if self._closing:
                # stop() began while this child was forked: it leaves at once (end of file).
                self._close_job_fd(child)
                return
            assert self._selector is not None
            self._selector.register(child.outcome_fd, selectors.EVENT_READ, ("outcome", child))
            self._selector.register(child.watch_fd, selectors.EVENT_READ, ("exit", child))
            self._children.append(child)
            self._idle.append(child)
            self._changed.notify_all()

    def _set_dying(self, child: Child, kill_at: float | None) -> None:
        """Take a child out of service (lock held); its replacement is made at once."""
        if child.state == "busy":
            self._busy -= 1
        elif child.state == "idle":
            self._idle.remove(child)
        if child.job is not None and child.job.job_id is not None:
            self._by_job.pop(child.job.job_id, None)
        child.state = "dying"
        child.kill_at = kill_at
        self._changed.notify_all()

    def _retire(self, child: Child) -> None:
        """Let an idle child go (lock held): end of file on its job pipe, a kill if it lingers."""
        child.state = "retiring"
        child.kill_at = time.monotonic() + RETIRE_GRACE
        self._close_job_fd(child)

    def _close_job_fd(self, child: Child) -> None:
        """Close the job pipe (lock held) unless a thread is still writing to it."""
        if child.job_fd >= 0 and not child.sending:
            close_fd(child.job_fd)
            child.job_fd = -1

    def _forget(self, child: Child) -> None:
        """Drop a child that has exited (lock held): unregister and close its pipes."""
        if child in self._children:
            self._children.remove(child)
        if self._selector is not None:
            for fd in (child.outcome_fd, child.watch_fd):
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.unregister(fd)
        self._close_job_fd(child)
        close_fd(child.outcome_fd)
        child.outcome_fd = -1
        if child.watch_owned:
            close_fd(child.watch_fd)
        child.watch_fd = -1
        close_fd(child.lifeline_fd)  # after its exit: closing it earlier would kill the child
        child.lifeline_fd = -1
        with contextlib.suppress(ValueError):  # still running (a kill that has not landed): billiard keeps it
            child.process.close()

    # ---- Turns: the worker's thread or the supervisor (see _turns) ----------------------

    def poll(self, timeout: float) -> bool:
        # The consumer's thread takes the turns while the pool is busy: no thread hop
        # between a child's outcome and the next job (the supervisor waits meanwhile).
        if not self._started or self._closing:
            return False
        return self._turns.poll(timeout)

    def release(self) -> None:
        self._turns.release()

    def interrupt(self) -> None:
        self._turns.wake()

    def _turn(self, timeout: float) -> None:
        """Wait up to ``timeout`` for outcomes, exits and deadlines, and act on them."""
        selector = self._selector
        assert selector is not None
        try:
            self._next_wake = due = self._next_due()
            events = selector.select(max(0.0, min(timeout, due - time.monotonic())))
            self._next_wake = float("inf")
            if self._closing:
                return
            reports: list[Report] = []
            for key, _mask in events:
                if key.data is None:
                    self._turns.woken()
                    continue
                kind, child = key.data
                if kind == "outcome":
                    self._read_outcomes(child, reports)
                else:
                    self._on_exit(child, reports)
            if time.monotonic() >= due:
                self._enforce_deadlines(reports)
            self._maintain()
            call_all(reports)
        except Exception:
            logger.exception("prefork pool: supervisor error; carrying on")
            time.sleep(0.1)

    def _next_due(self) -> float:
        due = float("inf")
        with self._lock:
            for child in self._children:
                job = child.job
                if job is not None and job.deadline is not None and child.state == "busy":
                    due = min(due, job.deadline)
                if child.kill_at is not None:
                    due = min(due, child.kill_at)
        return due

    def _read_outcomes(self, child: Child, reports: list[Report]) -> None:
        """Act on what the child wrote; at end of file (the child has gone) stop watching its pipe."""
        frames, at_end = read_frames(child.outcome_fd, child.buffer, self._read_buffer)  # turns never overlap
        for frame in frames:
            self._on_outcome(child, frame, reports)
        if at_end and self._selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(child.outcome_fd)

    def _on_outcome(self, child: Child, frame: bytes, reports: list[Report]) -> None:
        try:
            ok, value, retire = pickle.loads(frame)  # noqa: S301 - written by this pool's own child
        except Exception as exc:
            ok, retire = False, None
            value = TaskqError(f"could not read a task's outcome from {child.name}: {type(exc).__name__}: {exc}")
        with self._lock:
            job = child.job
            if job is None or child.state != "busy":
                return  # stopped already (terminated, timed out): reported that way
            child.job = None
            self._busy -= 1
            if job.job_id is not None:
                self._by_job.pop(job.job_id, None)
            if (
                retire is None
                and len(self._children) > self.concurrency
                and sum(1 for c in self._children if c.state in ("idle", "busy")) > self.concurrency
            ):
                retire = "the pool shrank"
            if retire is not None:
                logger.info("prefork pool: replacing %s (pid %d): %s", child.name, child.pid, retire)
                self._retire(child)
            else:
                child.state = "idle"
                self._idle.append(child)
            self._changed.notify_all()
        reports.append((job, ok, value))

    def _on_exit(self, child: Child, reports: list[Report]) -> None:
        if child.outcome_fd >= 0:
            self._read_outcomes(child, reports)  # what it wrote before it went
        code = child.process.exitcode  # reaps it: the pidfd said it has exited
        with self._lock:
            state, job = child.state, child.job
            if state in ("idle", "busy"):
                self._set_dying(child, None)
            if job is not None and child.sending and job.fate is None:
                job = None  # a thread is writing this job to it: _send decides what became of it
            else:
                child.job = None
            self._forget(child)
            closing = self._closing or self._stopping
        if job is not None:
            if job.fate == "terminated":
                reports.append((job, False, Terminated(f"task {job.job_id} was terminated")))
            else:
                reports.append(
                    (
                        job,
                        False,
                        WorkerLostError(
                            f"the pool process {child.name} (pid {child.pid}) running task {job.job_id} "
                            f"exited unexpectedly ({describe_exit(code)})"
                        ),
                    )
                )
        if state in ("idle", "busy") and not closing:
            logger.error(
                "prefork pool: %s (pid %d) exited unexpectedly (%s); replacing it",
                child.name,
                child.pid,
                describe_exit(code),
            )

    def _enforce_deadlines(self, reports: list[Report]) -> None:
        now = time.monotonic()
        with self._lock:
            for child in list(self._children):
                job = child.job
                if child.state == "busy" and job is not None and job.deadline is not None and job.deadline <= now:
                    logger.warning(
                        "prefork pool: task %s ran past its hard time limit (%ss); killing %s (pid %d)",
                        job.job_id,
                        job.hard_time_limit,
                        child.name,
                        child.pid,
                    )
                    send_signal(child.pid, signal.SIGKILL)
                    self._set_dying(child, None)
                    child.job = None
                    error = TimeLimitExceeded(
                        f"task {job.job_id} ran past its hard time limit ({job.hard_time_limit}s)"
                    )
                    reports.append((job, False, error))
                elif child.kill_at is not None and child.kill_at <= now:
                    logger.warning("prefork pool: %s (pid %d) did not exit in time; killing it", child.name, child.pid)
                    send_signal(child.pid, signal.SIGKILL)
                    child.kill_at = None
                    if job is not None:
                        child.job = None
                        reports.append((job, False, Terminated(f"task {job.job_id} was terminated")))

    def _maintain(self) -> None:
        """Replace missing children, retire extra idle ones, and start queued jobs."""
        if not self._pending and len(self._idle) + self._busy == self.concurrency == len(self._children):
            return  # every child in service, nothing queued: the usual turn
        with self._lock:
            if self._closing:
                return
            alive = sum(1 for c in self._children if c.state in ("idle", "busy"))
            missing = self.concurrency - alive
            while missing < 0 and self._idle:
                self._retire(self._idle.pop())
                missing += 1
        for _ in range(max(0, missing)):
            self._add_child(self._spawn())
        sends: list[tuple[Child, Job]] = []
        with self._lock:
            while self._pending:
                child = self._claim_idle(self._pending[0])
                if child is None:
                    break
                sends.append((child, self._pending.popleft()))
        for child, job in sends:
            self._send(child, job)


__all__ = ["PreforkPool"]

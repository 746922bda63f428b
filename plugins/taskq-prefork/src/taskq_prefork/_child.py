"""What runs in a prefork child process: read a job, run it, send back its outcome, repeat.

Jobs and outcomes travel as frames on two pipes per child: a 4-byte big-endian length,
then a pickle. A job is ``(target, args, soft_time_limit)``; an outcome is
``(ok, value, retire_reason)``, where ``retire_reason`` is set when the child leaves
after this job (``max_tasks_per_child``, ``max_memory_per_child``, or the task raised
``SystemExit``). The child also leaves when its job pipe reaches end of file: the
parent closed it (shrink, stop) or died.

A child never outlives its parent, even in the middle of a task: the task's message is
the parent's, and once the parent is gone its lease lapses and another worker runs it,
so a child that went on would run it twice. Two guards, armed before the child does
anything else (:func:`die_with_parent`), both carried out by the kernel, so they work
even while a task holds the GIL in C code:

* the *lifeline*: a pipe of its own whose write end only the parent holds, and nobody
  writes to. The child asks for ``SIGIO`` when it becomes readable (``O_ASYNC``, owner
  itself). When the parent dies, however it dies, the kernel closes that end and sends
  ``SIGIO``, whose default action ends the process. (Where ``SIGIO`` is ignored by
  default, as on macOS, a handler ends it instead, between two bytecodes.)
* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` as well, where the child was forked by
  the parent's main thread. Linux ties that signal to the *thread* that forked, so it is
  not used for children forked by the pool's supervisor thread, which ends before the
  pool does.

After arming them the child checks that its parent is still the process that forked it:
one that died in between would have left the child adopted and unwarned.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import logging
import os
import pickle
import resource
import signal
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from taskq import App
from taskq.errors import SoftTimeLimitExceeded, TaskqError

logger = logging.getLogger(__name__)

#: Frame header: the payload's length in bytes.
HEADER = struct.Struct("!I")
# Payloads above this many bytes are written after the header instead of copied onto it.
COPY_LIMIT = 16 * 1024
# Longest repr of a value that cannot be pickled, in characters.
REPR_MAX = 1000
# Bytes the child reads from its job pipe at once.
READ_BUFFER = 64 * 1024

_UNSET = object()


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """What a child needs to know, given at fork (nothing is pickled)."""

    name: str
    job_fd: int
    outcome_fd: int
    close_fds: tuple[int, ...]  # the parent's ends and the other children's pipes
    max_tasks: int | None
    max_memory: int | None  # KiB of resident memory
    parent_pid: int  # the process that forked this child
    lifeline_fd: int  # read end of this child's lifeline, whose write end only the parent holds
    parent_death_signal: bool  # forked by the parent's main thread: PR_SET_PDEATHSIG applies
    on_start: Callable[[], None] | None = None  # the pool's process_init
    on_exit: Callable[[], None] | None = None  # the pool's process_shutdown


class _Running:
    """Whether a job is running now, and its soft limit (read by the signal handler)."""

    job = False
    soft: float | None = None


def write_frame(fd: int, payload: bytes) -> None:
    """Write one frame to ``fd`` (blocking), however many writes it takes."""
    header = HEADER.pack(len(payload))
    if len(payload) <= COPY_LIMIT:
        _write_all(fd, header + payload)
    else:
        _write_all(fd, header)
        _write_all(fd, payload)


def read_frames(fd: int, pending: bytearray, scratch: bytearray) -> tuple[list[bytes], bool]:
    """The whole frames that have arrived on the non-blocking ``fd``, and whether it is at end of file.

    A frame cut short stays in ``pending`` for the next call. ``scratch`` is a buffer kept
    for reading into (os.read would allocate, then shrink, a buffer on every call).
    """
    frames: list[bytes] = []
    while True:
        try:
            count = os.readv(fd, [scratch])
        except BlockingIOError:
            return frames, False
        except OSError:
            count = 0
        if not count:
            return frames, True
        pending += memoryview(scratch)[:count]
        while len(pending) >= HEADER.size:
            (size,) = HEADER.unpack_from(pending)
            if len(pending) < HEADER.size + size:
                break
            frames.append(bytes(pending[HEADER.size : HEADER.size + size]))
            del pending[: HEADER.size + size]
        if count < len(scratch):
            return frames, False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def child_main(config: ChildConfig) -> None:
    """The child's whole life (billiard's ``Process.run``)."""
    _reset_signals()
    for fd in config.close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    die_with_parent(config)
    _name_process(config.name)
    reader = open(config.job_fd, "rb", buffering=READ_BUFFER)  # noqa: SIM115 - read for the child's whole life
    apps: dict[int, App] = {}
    done = 0
    _call_quietly(config.on_start, "process_init")
    try:
        while True:
            header = reader.read(HEADER.size)
            if len(header) < HEADER.size:
                return  # the parent closed the pipe: time to go
            (size,) = HEADER.unpack(header)
            payload = reader.read(size)
            if len(payload) < size:
                return
            ok, value, leave = _run(payload, apps)
            done += 1
            reason = leave or _retire_reason(config, done)
            write_frame(config.outcome_fd, _encode(ok, value, reason))
            if reason is not None:
                return
    except BrokenPipeError:
        return  # the parent is gone
    finally:
        _call_quietly(config.on_exit, "process_shutdown")
        for app in apps.values():
            _close_quietly(app)


def _call_quietly(function: Callable[[], None] | None, what: str) -> None:
    """Call the worker's ``process_init``/``process_shutdown``; what it raises is logged."""
    if function is None:
        return
    try:
        function()
    except Exception:
        logger.exception("prefork pool: the worker's %s raised in %s", what, os.getpid())


def _run(payload: bytes, apps: dict[int, App]) -> tuple[bool, object, str | None]:
    """Run one job: ``(ok, value or exception, reason to leave or None)``."""
    try:
        target, args, soft = pickle.loads(payload)  # noqa: S301 - written by this pool's parent
    except Exception as exc:
        return False, TaskqError(f"the pool process could not read the job: {type(exc).__name__}: {exc}"), None
    if args and isinstance(args[0], App):
        # The app (by reference): closed on the way out so its connections end cleanly.
        apps.setdefault(id(args[0]), args[0])
    value: object = _UNSET
    try:
        try:
            if soft:
                _Running.soft = soft
                signal.setitimer(signal.ITIMER_REAL, soft)
            _Running.job = True
            value = _call(target, args)
        finally:
            _Running.job = False
            if soft:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except SoftTimeLimitExceeded as exc:
        # The alarm can land just after the job returned: the job still succeeded.
        return (True, value, None) if value is not _UNSET else (False, exc, None)
    except SystemExit as exc:
        return False, exc, f"the task raised SystemExit({exc.code!r})"
    except BaseException as exc:
        return False, exc, None
    return True, value, None


def _call(target: Callable[..., object], args: tuple[object, ...]) -> object:
    return target(*args)


def _encode(ok: bool, value: object, reason: str | None) -> bytes:
    """Pickle an outcome; a value that cannot be pickled is replaced by a description of it."""
    try:
        return pickle.dumps((ok, value, reason), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    retval = getattr(value, "retval", _UNSET)
    if dataclasses.is_dataclass(value) and retval is not _UNSET:
        # A TraceOutcome whose return value cannot travel: its result is stored already;
        # the parent only needs the state, so send a description of the value instead.
        try:
            stand_in = dataclasses.replace(value, retval=_describe(retval))  # type: ignore[type-var]  # a dataclass instance
            return pickle.dumps((ok, stand_in, reason), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
    return pickle.dumps((False, TaskqError(f"{_describe(value)} (could not send it back: {problem})"), reason))


def _describe(value: object) -> object:
    if isinstance(value, BaseException):
        kind = type(value)
        return TaskqError(f"{kind.__module__}.{kind.__qualname__}: {value}")
    text = repr(value)
    return text if len(text) <= REPR_MAX else text[: REPR_MAX - 3] + "..."


def _retire_reason(config: ChildConfig, done: int) -> str | None:
    if config.max_tasks and done >= config.max_tasks:
        return f"it ran {done} task(s) (max_tasks_per_child={config.max_tasks})"
    if config.max_memory:
        rss = resident_kib()
        if rss > config.max_memory:
            return f"its resident memory is {rss} KiB (max_memory_per_child={config.max_memory})"
    return None


def resident_kib() -> int:
    """This process's resident memory now, in KiB (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


def _on_soft_limit(_signum: int, _frame: FrameType | None) -> None:
    if _Running.job:
        raise SoftTimeLimitExceeded(f"soft time limit ({_Running.soft}s) exceeded")


def _reset_signals() -> None:
    """Undo the parent's handlers: Ctrl-C and shutdown signals are the parent's business."""
    for signum in signal.valid_signals():
        try:
            if callable(signal.getsignal(signum)):
                signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError, TypeError):
            continue
    # Ctrl-C reaches the whole process group; the parent decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The soft time limit: armed by the child itself, or sent by anyone as SIGUSR1.
    signal.signal(signal.SIGALRM, _on_soft_limit)
    signal.signal(signal.SIGUSR1, _on_soft_limit)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)


# prctl(2) option: the signal this process gets when its parent (thread) dies. Linux only.
PR_SET_PDEATHSIG = 1


def die_with_parent(config: ChildConfig) -> None:
    """Arm the guards that end this child when its parent dies (see the module docstring)."""
    if config.parent_death_signal and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no libc to call: the lifeline still holds
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if config.lifeline_fd >= 0 and hasattr(os, "O_ASYNC"):
        if sys.platform.startswith("linux"):
            signal.signal(signal.SIGIO, signal.SIG_DFL)  # its default action ends the process
        else:
            signal.signal(signal.SIGIO, _on_lifeline_signal)
        with contextlib.suppress(OSError):
            fcntl.fcntl(config.lifeline_fd, fcntl.F_SETOWN, os.getpid())
            flags = fcntl.fcntl(config.lifeline_fd, fcntl.F_GETFL)
            fcntl.fcntl(config.lifeline_fd, fcntl.F_SETFL, flags | os.O_ASYNC)
    if os.getppid() != config.parent_pid:  # it died before the guards were up
        _parent_gone()


def _on_lifeline_signal(_signum: int, _frame: FrameType | None) -> None:
    _parent_gone()


def _parent_gone() -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"taskq prefork child {os.getpid()}: the worker process died; stopping at once\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def _name_process(name: str) -> None:
    # logging's %(processName)s reads the standard library's multiprocessing.
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        with contextlib.suppress(Exception):  # a cosmetic name only
            mp.current_process().name = name


def _close_quietly(app: App) -> None:
    with contextlib.suppress(Exception):  # leaving anyway; the OS closes what is left
        app.close()


__all__ = ["HEADER", "ChildConfig", "child_main", "read_frames", "resident_kib", "write_frame"]

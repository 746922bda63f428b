"""Fixtures for Celery interoperability: both apps on one real broker, workers of each kind.

Run by ``nox -s interop``, which installs Celery 5 next to taskq. Each test gets its
own queue name and its own control exchange (the remote control namespace, Celery's
``control_exchange``), so that workers of other tests, or left over from an earlier run,
never answer its inspect and control requests. The Redis database and RabbitMQ vhost are
the shared servers of SERVICES.md, which must be running (a missing one fails the test
with the command that starts it).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# Seconds a worker may take to start consuming, and to stop.
WORKER_READY_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 30.0
REDIS_URL = "redis://127.0.0.1:6379/13"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
START_COMMANDS = {
    6379: 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
    5672: "rabbitmq-server -detached",
}


def _require(port: int, what: str) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return
    except OSError:
        pytest.fail(f"{what} is not running on 127.0.0.1:{port}; start it with: {START_COMMANDS[port]}")


BROKERS = {
    "redis": (REDIS_URL, REDIS_URL),
    "rabbitmq": (AMQP_URL, REDIS_URL),
}


@pytest.fixture(params=sorted(BROKERS))
def interop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """Both apps on one broker and one queue; returns the modules and the environment."""
    broker, backend = BROKERS[request.param]
    _require(6379, "Redis")
    if broker.startswith("amqp"):
        _require(5672, "RabbitMQ")
    queue = f"interop-{uuid.uuid4().hex[:10]}"
    control_exchange = f"ctl{uuid.uuid4().hex[:10]}"
    env = {
        "INTEROP_BROKER": broker,
        "INTEROP_BACKEND": backend,
        "INTEROP_QUEUE": queue,
        "INTEROP_CONTROL_EXCHANGE": control_exchange,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    taskq_side = importlib.reload(importlib.import_module("interop_tasks_taskq"))
    celery_side = importlib.reload(importlib.import_module("interop_tasks_celery"))
    yield {
        "taskq": taskq_side,
        "celery": celery_side,
        "env": env,
        "queue": queue,
        "broker": request.param,
        "control_exchange": control_exchange,
    }
    taskq_side.app.close()
    celery_side.app.close()
    forget_mailbox(broker, control_exchange)


def forget_mailbox(broker: str, namespace: str) -> None:
    """Delete what the control namespace ``namespace`` left on ``broker``: on Redis its
    bindings, reply lists and binding deadlines; on RabbitMQ its two exchanges (kombu
    declares them durable=False but not auto-delete). The queues are auto-delete or expire."""
    if broker.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker)
        try:
            keys = list(client.scan_iter(match=f"*{namespace}*", count=1000))
            if keys:
                client.delete(*keys)
            client.zrem("_kombu.binding_deadlines", f"{namespace}.pidbox", f"reply.{namespace}.pidbox")
        finally:
            client.close()
        return
    from kombu import Connection

    with Connection(broker, connect_timeout=5) as connection:
        for exchange in (f"{namespace}.pidbox", f"reply.{namespace}.pidbox"):
            channel = connection.channel()
            try:
                channel.exchange_delete(exchange)
            except Exception as exc:  # not declared by this test: nothing to forget
                print(f"could not delete the exchange {exchange}: {exc}")
            finally:
                with contextlib.suppress(Exception):
                    channel.close()


def delete_queue(broker: str, name: str) -> None:
    """Delete the queue ``name`` on ``broker`` with what it holds (kombu's layout on both)."""
    from kombu import Connection

    with Connection(broker, connect_timeout=5) as connection:
        channel = connection.channel()
        try:
            channel.queue_delete(name)
        except Exception as exc:  # never declared
            print(f"could not delete the queue {name}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                channel.close()


class Worker:
    """A worker subprocess with its own log file; ``hostname`` is its node name."""

    def __init__(
        self, popen: subprocess.Popen[bytes], log_path: Path, ready_text: str, hostname: str = "", kind: str = ""
    ) -> None:
        self.popen = popen
        self.log_path = log_path
        self.ready_text = ready_text
        self.hostname = hostname
        self.kind = kind

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.ready_text in self.log():
                return
            if self.popen.poll() is not None:
                raise AssertionError(f"worker exited with {self.popen.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"worker not ready after {WORKER_READY_TIMEOUT}s:\n{self.log()}")

    def wait_exited(self, timeout: float = WORKER_STOP_TIMEOUT) -> int:
        """The exit status, once the worker has exited by itself within ``timeout`` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker {self.hostname} still running after {timeout}s:\n{self.log()}") from None

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(WORKER_STOP_TIMEOUT)


@pytest.fixture
def start_worker(interop: dict[str, object], tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    """``start_worker("taskq")`` or ``start_worker("celery")``: a ready worker on the test's queue.

    ``events=True``: the worker sends task events (``-E``; a Celery worker its heartbeats too).
    ``heartbeat=True``: a Celery worker sends its heartbeats without ``-E`` (without them it
    cannot turn task events on when asked: ``enable_events`` needs its event dispatcher on).
    ``mingle=True``: it greets its peers at start and learns their revoked ids (off by
    default on both: ``--without-mingle``, ``TASKQ_WORKER_MINGLE=false``). ``queues``:
    the queues it consumes instead of the test's. ``name``: its node name (default
    ``<kind>-<queue>@<host>``, then ``<kind>-<queue>-<n>@<host>`` for the n-th of its kind).
    ``ready=False``: return at once; call ``wait_ready()`` before using it. ``app``: the
    module given to ``-A`` instead of ``interop_tasks_<kind>``.
    """
    workers: list[Worker] = []

    def start(
        kind: str,
        *,
        events: bool = False,
        heartbeat: bool = False,
        mingle: bool = False,
        queues: list[str] | None = None,
        name: str | None = None,
        ready: bool = True,
        app: str | None = None,
    ) -> Worker:
        queue = str(interop["queue"])
        consumed = ",".join(queues or [queue])
        if name is None:
            name = _default_name(kind, queue, sum(1 for worker in workers if worker.kind == kind))
        env = process_env(interop)
        if kind == "taskq":
            env["TASKQ_WORKER_MINGLE"] = "true" if mingle else "false"
            command = [
                sys.executable,
                "-m",
                "taskq",
                "worker",
                "-A",
                app or "interop_tasks_taskq",
                "--pool=solo",
                "-Q",
                consumed,
                "-n",
                name,
                "-l",
                "info",
                *(["-E"] if events else []),
            ]
            ready_text = " ready (pool="
        else:
            command = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                app or "interop_tasks_celery",
                "worker",
                "--pool=solo",
                "-c",
                "1",
                "-Q",
                consumed,
                "--loglevel=INFO",
                "--without-gossip",
                *([] if mingle else ["--without-mingle"]),
                *(["-E"] if events else [] if heartbeat else ["--without-heartbeat"]),
                # A name of its own: Celery workers of the same name share (and lock) one
                # RabbitMQ control queue, so two runs side by side would fail to start.
                "-n",
                name,
            ]
            ready_text = " ready."
        log_path = tmp_path / f"{kind}-worker-{len(workers)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        worker = Worker(popen, log_path, ready_text, name, kind)
        workers.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
        # shown by pytest only when the test failed
        print(f"---- {worker.log_path.name} ----\n{worker.log()}")


def _default_name(kind: str, queue: str, earlier: int) -> str:
    """A worker's node name: the first of each kind keeps the name tests have always seen
    (a Celery worker's has the queue in it: Celery workers of one name share, and lock, one
    RabbitMQ control queue); the later ones get the queue and a number."""
    host = socket.gethostname()
    if earlier:
        return f"{kind}-{queue}-{earlier}@{host}"
    return f"celery-{queue}@{host}" if kind == "celery" else f"taskq@{host}"


def process_env(interop: dict[str, object]) -> dict[str, str]:
    """The environment of a worker, CLI or Flower process: the test's settings, and this folder
    importable (PYTHONPATH made absolute, for a process that runs in another folder)."""
    extra = interop["env"]
    assert isinstance(extra, dict)
    paths = [str(HERE), *(str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {**os.environ, **extra, "PYTHONPATH": os.pathsep.join(paths)}


def module(interop: dict[str, object], kind: str) -> ModuleType:
    found = interop[kind]
    assert isinstance(found, ModuleType)
    return found

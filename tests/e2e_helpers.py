"""Helpers for the end-to-end tests: worker processes, reading the run log, waiting on a
condition, the shared servers."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import taskq.testing

# The servers every development and CI machine runs (shared/SERVICES.md), and how to start them.
REDIS_URL = "redis://127.0.0.1:6379/0"
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no '
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
START_RABBITMQ = "rabbitmq-server -detached"
# Seconds to wait for a shared server to accept a connection.
CONNECT_TIMEOUT = 2.0
# The folder of this file: e2e_app and the helpers, for a worker's PYTHONPATH.
TESTS = Path(__file__).resolve().parent


def worker_command(app: str, name: str, *extra: str) -> list[str]:
    """``taskq worker -A app -l info -n name extra...``; without ``--pool``/``-P`` the pool is solo.

    (With every plugin installed the default would be prefork; tests that are not about a
    pool keep to the simplest one, whose run log shows the worker's own pid.)
    """
    if not any(arg in ("-P", "--pool") or arg.startswith("--pool=") for arg in extra):
        extra = ("--pool=solo", *extra)
    return [sys.executable, "-m", "taskq", "worker", "-A", app, "-l", "info", "-n", name, *extra]


class WorkerProcess(taskq.testing.WorkerProcess):
    """A worker process that can import e2e_app and these helpers."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None) -> None:
        path = f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
        super().__init__(command, log_path, env={"PYTHONPATH": path, **env}, cwd=cwd)


def runs(e2e_env: dict[str, str]) -> list[tuple[str, str, int]]:
    """Every line of the run log as (event, key, pid)."""
    out = []
    for line in Path(e2e_env["E2E_LOG"]).read_text(encoding="utf-8").splitlines():
        event, key, pid = line.split()
        out.append((event, key, int(pid)))
    return out


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def require_server(name: str, port: int, start: str) -> None:
    """Fail (never skip) with the command that starts ``name`` when nothing answers on ``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        pytest.fail(f"{name} is not running at 127.0.0.1:{port} ({exc}); start it with:\n    {start}")


def require_redis() -> None:
    require_server("Redis", 6379, START_REDIS)


def require_rabbitmq() -> None:
    require_server("RabbitMQ", 5672, START_RABBITMQ)


def redis_settings(namespace: str) -> dict[str, object]:
    """Broker and results on the shared Redis, every key under ``namespace:`` (deleted after)."""
    require_redis()
    prefix = {"global_keyprefix": f"{namespace}:"}
    return {
        "broker_url": REDIS_URL,
        "result_backend": REDIS_URL,
        "broker_transport_options": prefix,
        "result_backend_transport_options": prefix,
    }


def delete_redis_keys(prefix: str) -> None:
    """Delete every key of the shared Redis that starts with ``prefix``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix.replace("[", "\\[") + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def delete_rabbitmq_queue(queue: str) -> None:
    """Delete ``queue`` from the shared RabbitMQ, with its exchange and dead letters."""
    from taskq_amqp.transport import AmqpTransport

    transport = AmqpTransport(AMQP_URL)
    try:
        transport.delete(queue)
    finally:
        transport.close()

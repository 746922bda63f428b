"""A refused password fails at once, at worker start and on a client call, and says so.

Against a private redis-server started with ``--requirepass`` on a free port: a wrong
password, a missing one and a password the server does not want each raise a
``ConfigError`` within a second that names the setting to fix and never the password;
a worker given a wrong password exits before it says "ready".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from taskq import App
from taskq.errors import ConfigError
from taskq.testing import run_worker

from ..conftest import RedisServer

pytestmark = pytest.mark.integration

PASSWORD = "Right-Pw-7Qe9-distinctive"
WRONG = "Wrong-Pw-3Xk1-distinctive"
# Longest a refused password may take to be reported, in seconds (no retries: well under).
AT_ONCE = 2.0
# Longest a worker may take to give up on a refused password (its start-up included).
WORKER_EXIT_TIMEOUT = 20.0


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, "--requirepass", PASSWORD)

    def ping() -> None:
        client = redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()

    try:
        server.start(ping=ping)
        yield server
    finally:
        server.stop()


def url(server: RedisServer, password: str | None) -> str:
    auth = f":{password}@" if password is not None else ""
    return f"redis://{auth}127.0.0.1:{server.port}/0"


def make_app(broker: str, backend: str | None = None) -> App:
    app = App("auth", broker=broker, backend=backend or broker, read_config=False)
    app.conf.update(task_default_queue=f"auth-{uuid.uuid4().hex[:8]}")

    @app.task(name="auth.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def refused(call: object, setting: str) -> ConfigError:
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        call()  # type: ignore[operator]
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < AT_ONCE, f"took {elapsed:.1f}s: {message}"
    assert "refused" in message and setting in message, message
    assert PASSWORD not in message and WRONG not in message, message
    return info.value


def test_a_wrong_password_fails_a_send_at_once_naming_broker_url(locked_redis: RedisServer) -> None:
    app = make_app(url(locked_redis, WRONG))
    refused(lambda: app.send_task("auth.add", [1, 2]), "broker_url")


def test_no_password_fails_a_send_at_once(locked_redis: RedisServer) -> None:
    app = make_app(url(locked_redis, None))
    error = refused(lambda: app.send_task("auth.add", [1, 2]), "broker_url")
    assert "requires a password" in str(error)


def test_a_wrong_result_backend_password_fails_get_at_once_naming_result_backend(locked_redis: RedisServer) -> None:
    app = make_app(url(locked_redis, PASSWORD), url(locked_redis, WRONG))
    result = app.AsyncResult(str(uuid.uuid4()))
    refused(lambda: result.get(timeout=30), "result_backend")
    refused(lambda: result.state, "result_backend")


def test_a_password_the_server_does_not_want_is_refused(locked_redis: RedisServer, tmp_path: Path) -> None:
    open_server = RedisServer(tmp_path / "open")
    (tmp_path / "open").mkdir()
    open_server.start()
    try:
        app = make_app(url(open_server, WRONG))
        refused(lambda: app.send_task("auth.add", [1, 2]), "broker_url")
    finally:
        open_server.stop()


def test_the_right_password_works(locked_redis: RedisServer) -> None:
    app = make_app(url(locked_redis, PASSWORD))
    app.send_task("auth.add", [1, 2])
    assert app.transport.depth(str(app.conf["task_default_queue"])) == 1


@pytest.mark.parametrize("results", ["the same Redis", "disabled"])
def test_a_worker_with_a_wrong_password_exits_at_once_and_says_why(locked_redis: RedisServer, results: str) -> None:
    settings = {"broker_url": url(locked_redis, WRONG)}
    if results == "disabled":  # the broker alone refuses: the worker must not say "ready" either
        settings["result_backend"] = "disabled"
    run = run_worker(settings, "-Q", f"auth-{uuid.uuid4().hex[:8]}", timeout=WORKER_EXIT_TIMEOUT)
    output = run.output
    assert run.returncode != 0, output
    assert " ready (pool=" not in output, output
    assert "refused the credentials" in output and "broker_url" in output, output
    assert WRONG not in output and PASSWORD not in output, output
    assert "is it running" not in output, output
    assert run.seconds < 10, f"the worker took {run.seconds:.1f}s to give up:\n{output}"

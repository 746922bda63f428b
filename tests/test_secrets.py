"""No password, key or token reaches a log line, an error, a repr, a banner or CLI output.

Every URL here carries a distinctive secret; every text a user can see is scanned for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import App
from taskq.errors import ConfigError
from taskq.testing import settings_env
from taskq.testing.conformance import REDIS, free_port, moto_server, start_server

SECRET = "Zq7-distinctive-SECRET-4tw"
KEY_ID = "AKIAZQ7DISTINCTIVEKEY"


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets or (SECRET, KEY_ID):
        assert secret not in text, f"a secret leaked into:\n{text}"


# ---- Errors and reprs of drivers, without a server --------------------------------------


def test_s3_reports_a_bad_url_without_its_keys() -> None:
    from taskq_s3.backend import parse_url

    with pytest.raises(ConfigError) as info:
        parse_url(f"s4://{KEY_ID}:{SECRET}@bucket/prefix")
    assert_clean(str(info.value))


def test_amqp_reports_a_bad_url_and_its_parameters_without_the_password() -> None:
    from taskq_amqp._connection import parse_url

    with pytest.raises(ConfigError) as info:
        parse_url(f"amqx://guest:{SECRET}@127.0.0.1:5672//?password={SECRET}", {})
    assert_clean(str(info.value))
    params = parse_url(f"amqp://guest:{SECRET}@127.0.0.1:5672//", {})
    assert params.password == SECRET
    assert_clean(repr(params))
    assert_clean(params.masked)


def test_an_app_repr_and_a_url_without_a_scheme_hide_the_password() -> None:
    app = App("secrets", broker=f"redis://:{SECRET}@127.0.0.1:1/0", read_config=False)
    assert_clean(repr(app))
    with pytest.raises(ConfigError) as info:
        App("secrets", broker=f"user:{SECRET}@127.0.0.1:1", read_config=False).new_transport()
    assert_clean(str(info.value))


# ---- Real workers and clients, their logs, errors, tracebacks and CLI output scanned -----

# Seconds a CLI command, a worker start or stop, and a result may take.
CLI_TIMEOUT = 60.0
READY_TIMEOUT = 30.0
RESULT_TIMEOUT = 20.0
# Seconds a command given bad settings runs before SIGTERM (a worker retrying an outage).
BAD_RUN = 8.0
APP_SOURCE = """
from taskq import App

app = App("secapp")


@app.task(name="secapp.add")
def add(x, y):
    return x + y


@app.task(name="secapp.fail")
def fail(message):
    raise ValueError(message)
"""


class Scan:
    """Every text a user could see in one scenario, checked for the secrets at the end."""

    def __init__(self, *secrets: str) -> None:
        self.secrets = secrets
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def error(self, where: str, call: Callable[[], object]) -> BaseException | None:
        """Run ``call``; record its value, or its error and whole traceback."""
        try:
            value = call()
        except BaseException as exc:  # any error at all is scanned
            self.add(where, "".join(traceback.format_exception(exc)))
            return exc
        self.add(where, repr(value))
        return None

    def check(self) -> None:
        assert self.texts
        for where, text in self.texts:
            for secret in self.secrets:
                assert secret not in text, f"a secret leaked into {where}:\n{text}"


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Every log record taskq and its plugins made in this process, with its traceback.

    Only taskq's loggers: in a client, the application's own logging configuration
    decides what libraries print (botocore at debug level prints its signed requests).
    The worker's log, which taskq formats, is scanned whole.
    """
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("taskq"):
                lines.append(logging.Formatter("%(levelname)s %(name)s %(message)s").format(record))

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def cli(scan: Scan, cwd: Path, env: dict[str, str], *args: str, run_for: float = CLI_TIMEOUT) -> str:
    """Run ``taskq ARGS``; one still running after ``run_for`` s (a worker retrying) gets SIGTERM."""
    popen = subprocess.Popen(
        [sys.executable, "-m", "taskq", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = popen.communicate(timeout=run_for)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGTERM)
        try:
            output, _ = popen.communicate(timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            output, _ = popen.communicate(timeout=CLI_TIMEOUT)
    scan.add(f"taskq {' '.join(args)}", output)
    return output


@contextlib.contextmanager
def worker(scan: Scan, cwd: Path, env: dict[str, str], queue: str) -> Iterator[subprocess.Popen[bytes]]:
    """A ``taskq worker`` at debug level; its whole output is scanned once it stopped."""
    log = cwd / f"worker-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "taskq", "-A", "secapp", "worker", "-P", "solo", "-Q", queue, "-l", "debug"],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while " ready (pool=" not in log.read_text(errors="replace"):
            assert popen.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        yield popen
    finally:
        if popen.poll() is None:
            os.kill(popen.pid, signal.SIGTERM)
            try:
                popen.wait(CLI_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(CLI_TIMEOUT)
        scan.add("the worker's output", log.read_text(errors="replace"))


def project(tmp_path: Path, **settings: str) -> dict[str, str]:
    (tmp_path / "secapp.py").write_text(APP_SOURCE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update({"PYTHONPATH": str(tmp_path), "TASKQ_APP": "secapp"})
    env.update(settings_env(settings))
    return env


def client_app(env: dict[str, str]) -> App:
    from taskq.config import ENV_PREFIX

    settings = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    settings.pop("app", None)
    app = App("secapp", read_config=False)
    for name, value in settings.items():
        if name.endswith("transport_options"):
            app.conf.update(**{name: json.loads(value)})
        else:
            app.conf.update(**{name: value})
    return app


def exercise(
    scan: Scan, tmp_path: Path, env: dict[str, str], queue: str, *, inspect: bool = True, results: bool = True
) -> None:
    """Run a worker, a task that succeeds and one that fails, and the CLI around them."""
    app = client_app(env)
    with worker(scan, tmp_path, env, queue):
        ok = app.send_task("secapp.add", [1, 2], queue=queue)
        assert ok.get(timeout=RESULT_TIMEOUT) == 3
        failed = app.send_task("secapp.fail", ["boom"], queue=queue)
        scan.error("get() of a failed task", lambda: failed.get(timeout=RESULT_TIMEOUT))
        scan.add("the failed task's traceback", str(failed.traceback))
        scan.add("repr(app)", repr(app))
        for args in (
            ["--help"],
            ["worker", "--help"],
            ["plugins"],
            ["call", "secapp.add", "--args", "[2, 3]", "--queue", queue],
            *([["result", ok.id], ["result", failed.id, "--traceback"]] if results else []),
        ):
            cli(scan, tmp_path, env, *args)
        if inspect:
            for command in ("ping", "stats", "registered", "active"):
                cli(scan, tmp_path, env, "inspect", command)
    app.close()


@pytest.mark.integration
def test_redis_with_a_password_never_shows_it(tmp_path: Path, captured_logs: list[str]) -> None:
    secret, wrong = f"Redis-{SECRET}", f"Wrong-{SECRET}"
    port = free_port()
    args = ["--port", "{port}", "--bind", "{host}", "--save", "", "--appendonly", "no", "--requirepass", secret]
    server = start_server(REDIS, *args, port=port, log=tmp_path / "redis.log")
    scan = Scan(secret, wrong)
    url = f"redis://:{secret}@127.0.0.1:{port}/0"
    queue = f"sec-{uuid.uuid4().hex[:8]}"
    try:
        env = project(tmp_path, broker_url=url)
        exercise(scan, tmp_path, env, queue)
        # The server goes away under a running worker and a client, and comes back.
        with worker(scan, tmp_path, env, queue):
            server.stop()
            app = client_app(env)
            app.conf.update(result_backend_transport_options={"retries": 1})
            scan.error("a send while Redis is down", lambda: app.send_task("secapp.add", [1, 1], queue=queue))
            scan.error("get() while Redis is down", lambda: app.AsyncResult("x").get(timeout=1))
            time.sleep(2)  # the worker logs the lost broker meanwhile
            server = start_server(REDIS, *args, port=port, log=tmp_path / "redis.log")
            assert app.send_task("secapp.add", [2, 2], queue=queue).get(timeout=RESULT_TIMEOUT) == 4
            app.close()
        # A wrong password, a missing one, and bad configuration.
        for bad in (
            f"redis://:{wrong}@127.0.0.1:{port}/0",
            f"redis://127.0.0.1:{port}/0",
            f"redis://:{secret}@127.0.0.1:notaport/0",
            f"redis:{secret}@127.0.0.1",
            f"rediss+bogus://:{secret}@127.0.0.1:{port}/0",
        ):
            bad_env = project(tmp_path, broker_url=bad)
            cli(scan, tmp_path, bad_env, "worker", "-P", "solo", "-Q", queue, run_for=BAD_RUN)
            cli(scan, tmp_path, bad_env, "inspect", "ping")
            cli(scan, tmp_path, bad_env, "call", "secapp.add", "--args", "[1, 2]")
            scan.error(
                f"a send to {bad[:12]}", lambda bad_env=bad_env: client_app(bad_env).send_task("secapp.add", [1])
            )
    finally:
        server.stop()
    scan.add("this process's log", "\n".join(captured_logs))
    scan.check()


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=CLI_TIMEOUT, check=True)


@pytest.mark.integration
def test_rabbitmq_with_a_user_of_its_own_never_shows_the_password(tmp_path: Path, captured_logs: list[str]) -> None:
    user, secret, wrong = f"taskq-sec-{uuid.uuid4().hex[:6]}", f"Amqp-{SECRET}", f"Wrong-{SECRET}"
    rabbitmqctl("add_user", user, secret)
    scan = Scan(secret, wrong)
    queue = f"sec-{uuid.uuid4().hex[:8]}"
    try:
        rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        env = project(tmp_path, broker_url=f"amqp://{user}:{secret}@127.0.0.1:5672//", result_backend="rpc://")
        # rpc:// results go to the sender alone: `taskq result` in another process cannot read them.
        exercise(scan, tmp_path, env, queue, results=False)
        for bad in (
            f"amqp://{user}:{wrong}@127.0.0.1:5672//",  # refused
            f"amqp://{user}:{secret}@127.0.0.1:{free_port()}//",  # nothing there
            f"amqp://{user}:{secret}@127.0.0.1:notaport//",
        ):
            bad_env = project(tmp_path, broker_url=bad, result_backend="rpc://")
            cli(scan, tmp_path, bad_env, "worker", "-P", "solo", "-Q", queue, run_for=BAD_RUN)
            cli(scan, tmp_path, bad_env, "call", "secapp.add", "--args", "[1, 2]")
    finally:
        # Suppressed: a user already gone (an operator's cleanup) is what this wanted.
        with contextlib.suppress(subprocess.CalledProcessError):
            rabbitmqctl("delete_user", user)
        with contextlib.suppress(subprocess.CalledProcessError):
            rabbitmqctl("delete_queue", queue)
    scan.add("this process's log", "\n".join(captured_logs))
    scan.check()


@pytest.mark.integration
def test_a_postgres_result_backend_with_a_password_never_shows_it(tmp_path: Path, captured_logs: list[str]) -> None:
    # PostgreSQL here trusts 127.0.0.1, so any password gets in: a distinctive one is enough.
    secret = f"Pg-{SECRET}"
    table = f"sec_{uuid.uuid4().hex[:8]}"
    scan = Scan(secret)
    queue = f"sec-{uuid.uuid4().hex[:8]}"
    backend = f"db+postgresql://postgres:{secret}@127.0.0.1:5432/test"
    options = json.dumps({"table": table})
    env = project(
        tmp_path,
        broker_url=f"sqlite:///{tmp_path / 'broker.db'}",
        result_backend=backend,
        result_backend_transport_options=options,
    )
    try:
        exercise(scan, tmp_path, env, queue)
        for bad in (
            f"db+postgresql://postgres:{secret}@127.0.0.1:{free_port()}/test",  # nothing there
            f"db+postgresql://no_such_role:{secret}@127.0.0.1:5432/test",  # refused
            f"db+mysql://root:{secret}@127.0.0.1:3306/test",  # refused: root has no password
            f"db+oracle://scott:{secret}@127.0.0.1/orcl",  # not supported
        ):
            bad_env = project(tmp_path, broker_url=f"sqlite:///{tmp_path / 'broker.db'}", result_backend=bad)
            cli(scan, tmp_path, bad_env, "worker", "-P", "solo", "-Q", queue, run_for=BAD_RUN)
            cli(scan, tmp_path, bad_env, "result", str(uuid.uuid4()), "--timeout", "2", run_for=BAD_RUN)
            cli(scan, tmp_path, bad_env, "db", "--help")
    finally:
        from taskq_sqlalchemy.backend import DatabaseBackend

        dropper = DatabaseBackend(backend, {"table": table})
        dropper.drop_tables()
        dropper.close()
    scan.add("this process's log", "\n".join(captured_logs))
    scan.check()


@pytest.mark.integration
def test_sqs_dynamodb_and_s3_on_moto_never_show_the_keys(tmp_path: Path, captured_logs: list[str]) -> None:
    key_id, secret = KEY_ID, f"Aws-{SECRET}"
    scan = Scan(key_id, secret)
    queue = f"sec-{uuid.uuid4().hex[:8]}"
    with moto_server(log=tmp_path / "moto.log") as endpoint:
        port = endpoint.rsplit(":", 1)[1]
        broker = f"sqs://{key_id}:{secret}@127.0.0.1:{port}"
        broker_options = json.dumps({"region": "us-east-1", "is_secure": False})
        backends = {
            "dynamodb": (f"dynamodb://{key_id}:{secret}@127.0.0.1:{port}/sec{uuid.uuid4().hex[:6]}", "{}"),
            "s3": (
                f"s3://sec-{uuid.uuid4().hex[:8]}/results",
                json.dumps(
                    {
                        "endpoint_url": endpoint,
                        "region": "us-east-1",
                        "aws_access_key_id": key_id,
                        "aws_secret_access_key": secret,
                        "create_bucket": True,
                    }
                ),
            ),
        }
        for backend, options in backends.values():
            env = project(
                tmp_path,
                broker_url=broker,
                broker_transport_options=broker_options,
                result_backend=backend,
                result_backend_transport_options=options,
            )
            exercise(scan, tmp_path, env, queue)
        gone = free_port()
        for bad_broker, bad_backend in (
            (f"sqs://{key_id}:{secret}@127.0.0.1:{gone}", f"dynamodb://{key_id}:{secret}@127.0.0.1:{gone}/t"),
            (broker, f"dynamodb://{key_id}:{secret}@127.0.0.1:notaport/t"),
            (broker, f"dynamodb://{key_id}:{secret}@127.0.0.1:{port}/t?read=1"),
            (broker, f"s3://{key_id}:{secret}@/nobucket"),
        ):
            bad_env = project(
                tmp_path,
                broker_url=bad_broker,
                broker_transport_options=broker_options,
                result_backend=bad_backend,
            )
            cli(scan, tmp_path, bad_env, "worker", "-P", "solo", "-Q", queue, run_for=BAD_RUN)
            cli(scan, tmp_path, bad_env, "result", str(uuid.uuid4()), "--timeout", "2", run_for=BAD_RUN)
            cli(scan, tmp_path, bad_env, "call", "secapp.add", "--args", "[1, 2]")
    scan.add("this process's log", "\n".join(captured_logs))
    scan.check()

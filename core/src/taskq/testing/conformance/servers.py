"""Test servers a plugin's tests start themselves: a free port, a subprocess, a deadline.

    @pytest.fixture(scope="session")
    def memcached() -> Iterator[ServerProcess]:
        with running_server(MEMCACHED, "-u", "memcache", "-l", "127.0.0.1", "-p", "{port}") as server:
            yield server

:func:`start_server` runs the command (``{port}`` and ``{host}`` filled in) as a child
process in a session of its own, waits until it accepts connections on the port (or
until ``ready()`` says so), and returns a :class:`ServerProcess` that stops it by its
process id. A binary that is not installed fails the test with the command that
installs it, and a server that does not come up fails with the command to try by hand:
a missing server never skips a test (SERVICES.md). :func:`moto_server` starts moto's
AWS API server (S3, DynamoDB, SQS) this way.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import pytest

#: The loopback address every test server binds (no test sends traffic elsewhere).
HOST = "127.0.0.1"
# Seconds a server may take to accept connections.
START_TIMEOUT = 20.0
# Seconds a server may take to exit after SIGTERM, before SIGKILL.
STOP_TIMEOUT = 10.0
# Seconds between two looks at a starting server.
POLL_INTERVAL = 0.02


@dataclass(frozen=True)
class Binary:
    """A server program, and the command that installs it (SERVICES.md)."""

    name: str
    install: str


MEMCACHED = Binary("memcached", "apt-get update && apt-get install -y memcached")
REDIS = Binary("redis-server", "apt-get update && apt-get install -y redis-server")
SECANTUSDB = Binary("secantusd-py", "pip install secantusdb  (in the plugin's test dependency group)")
MOTO = Binary("moto_server", "pip install 'moto[server]'  (in the plugin's test dependency group)")


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on at the moment (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def accepts_connections(port: int, host: str = HOST) -> bool:
    """Whether something accepts a TCP connection on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def find_binary(binary: Binary) -> str:
    """The program's path: beside this Python first (a virtualenv's scripts), then on PATH."""
    beside_python = Path(sys.executable).with_name(binary.name)
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(binary.name)
    if found is None:
        pytest.fail(
            f"{binary.name} is not installed (not beside {sys.executable}, not on PATH); "
            f"install it with:\n    {binary.install}"
        )
    return found


class ServerProcess:
    """A server started by :func:`start_server`, stopped by its process id."""

    def __init__(self, command: list[str], port: int, host: str, log: Path | None, env: dict[str, str] | None) -> None:
        self.command = command
        self.port = port
        self.host = host
        self.log = log
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, ready: Callable[[], bool] | None = None, timeout: float = START_TIMEOUT) -> None:
        """Start the process and return once it is ready; fail the test if it is not by ``timeout``."""
        output = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                self.command, stdout=output, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        finally:
            if not isinstance(output, int):
                output.close()  # the child holds its own copy
        is_ready = ready or (lambda: accepts_connections(self.port, self.host))
        deadline = time.monotonic() + timeout
        while not is_ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                code = self.process.poll()
                self.stop()
                seen = f"; see {self.log}" if self.log is not None else ""
                state = f"exited with code {code}" if code is not None else f"not ready within {timeout:.0f}s"
                pytest.fail(
                    f"{Path(self.command[0]).name} on {self.address} {state}{seen}. Try it by hand:\n"
                    f"    {shlex.join(self.command)}"
                )
            time.sleep(POLL_INTERVAL)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM by process id, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL by process id: no shutdown, no goodbye to clients."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)


def start_server(
    binary: Binary,
    *args: str,
    port: int | None = None,
    host: str = HOST,
    ready: Callable[[], bool] | None = None,
    timeout: float = START_TIMEOUT,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start ``binary`` with ``args`` (``{port}`` and ``{host}`` filled in) and wait until it is ready.

    Ready means it accepts connections on the port, unless ``ready()`` is given. The
    output goes to ``log`` when given (kept for the failure message), else nowhere.
    """
    chosen = port or free_port(host)
    command = [find_binary(binary), *(arg.replace("{port}", str(chosen)).replace("{host}", host) for arg in args)]
    server = ServerProcess(command, chosen, host, log, env)
    server.start(ready, timeout)
    return server


@contextlib.contextmanager
def running_server(
    binary: Binary,
    *args: str,
    port: int | None = None,
    host: str = HOST,
    ready: Callable[[], bool] | None = None,
    timeout: float = START_TIMEOUT,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """:func:`start_server` for a ``with`` block (a fixture's body); stopped by pid at its end."""
    server = start_server(binary, *args, port=port, host=host, ready=ready, timeout=timeout, log=log, env=env)
    try:
        yield server
    finally:
        server.stop()


# ---- moto: S3, DynamoDB and SQS on 127.0.0.1 ---------------------------------------------


def _moto_request(endpoint: str, method: str, path: str, timeout: float) -> int:
    """The HTTP status moto's server at ``endpoint`` answers ``method path`` with."""
    parts = urllib.parse.urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=timeout)
    try:
        connection.request(method, path)
        return connection.getresponse().status
    finally:
        connection.close()


def _moto_answers(endpoint: str) -> Callable[[], bool]:
    def answers() -> bool:
        try:
            return _moto_request(endpoint, "GET", "/moto-api/", timeout=2) == HTTPStatus.OK
        except OSError:
            return False

    return answers


@contextlib.contextmanager
def moto_server(log: Path | None = None) -> Iterator[str]:
    """``http://127.0.0.1:PORT``: moto's server for AWS APIs, as a subprocess, stopped at the end.

    It answers one request at a time, as the real services apply each call whole (see
    :mod:`taskq.testing.conformance._moto`).

    Clients take it as ``endpoint_url`` with region ``us-east-1`` and any keys; call
    :func:`reset_moto` after each test to wipe what it stored.
    """
    find_binary(MOTO)  # installed with moto's server extras, which the module below needs too
    port = free_port()
    endpoint = f"http://{HOST}:{port}"
    command = [sys.executable, "-m", "taskq.testing.conformance._moto", "-H", HOST, "-p", str(port)]
    server = ServerProcess(command, port, HOST, log, env=None)
    server.start(_moto_answers(endpoint))
    try:
        yield endpoint
    finally:
        server.stop()


def reset_moto(endpoint: str) -> None:
    """Wipe every bucket, table and queue moto's server at ``endpoint`` holds."""
    status = _moto_request(endpoint, "POST", "/moto-api/reset", timeout=10)
    assert status == HTTPStatus.OK, f"moto's server at {endpoint} answered the reset with HTTP {status}"


__all__ = [
    "HOST",
    "MEMCACHED",
    "MOTO",
    "REDIS",
    "SECANTUSDB",
    "Binary",
    "ServerProcess",
    "accepts_connections",
    "find_binary",
    "free_port",
    "moto_server",
    "reset_moto",
    "running_server",
    "start_server",
]

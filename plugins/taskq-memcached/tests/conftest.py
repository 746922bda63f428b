"""Fixtures for taskq-memcached's tests: a private memcached, started for the session."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

# Seconds to wait for memcached to accept connections.
START_DEADLINE = 10.0
INSTALL = "apt-get update && apt-get install -y memcached"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"version\r\n")
            return sock.recv(64).startswith(b"VERSION")
    except OSError:
        return False


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[tuple[str, int]]:
    """``("127.0.0.1", PORT)``: a memcached of this session's own, stopped at the end."""
    binary = shutil.which("memcached")
    if binary is None:
        pytest.fail(f"memcached is not installed; install it with:\n    {INSTALL}")
    port = free_port()
    # Foreground, tracked by pid: its -P pid file silently fails in a root-owned folder.
    command = [binary, "-u", "memcache", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + START_DEADLINE
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, err = process.communicate(timeout=5)
            pytest.fail(
                f"memcached did not answer on 127.0.0.1:{port} (exit code {process.poll()}: "
                f"{err.decode(errors='replace').strip()}); try by hand:\n    {' '.join(command)}"
            )
        time.sleep(0.02)
    yield ("127.0.0.1", port)
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    if process.stderr is not None:
        process.stderr.close()


@pytest.fixture
def memcached_url(memcached_server: tuple[str, int]) -> str:
    host, port = memcached_server
    return f"cache+memcached://{host}:{port}/"

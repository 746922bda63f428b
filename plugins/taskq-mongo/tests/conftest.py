"""Fixtures for taskq-mongo's tests: a private MongoDB-protocol server, a database per test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

# Seconds to wait for the test server to accept connections.
START_DEADLINE = 20.0
INSTALL = "pip install secantusdb  (or: uv pip install --group test, from plugins/taskq-mongo)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_command() -> str | None:
    beside_python = Path(sys.executable).with_name("secantusd-py")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("secantusd-py")


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mongodb://127.0.0.1:PORT``: secantusd-py started for this session, stopped at the end."""
    command = _server_command()
    if command is None:
        pytest.fail(f"secantusd-py (the test MongoDB server) is not installed; install it with:\n    {INSTALL}")
    port = free_port()
    storage = tmp_path_factory.mktemp("secantus")
    log = (storage / "server.log").open("wb")
    process = subprocess.Popen(
        [command, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage / "data")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"mongodb://127.0.0.1:{port}"
    deadline = time.monotonic() + START_DEADLINE
    while True:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(url, serverSelectionTimeoutMS=200)
        try:
            client.admin.command("ping")
            break
        except pymongo.errors.PyMongoError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(
                    f"secantusd-py did not answer on {url} (exit code {process.poll()}); see {storage}/server.log. "
                    f"Start it by hand with:\n    {command} --host 127.0.0.1 --port {port} --storage-path :memory:"
                )
            time.sleep(0.05)
        finally:
            client.close()
    yield url
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    log.close()


@pytest.fixture
def mongo_url(mongo_server: str) -> Iterator[str]:
    """A URL naming a database no other test uses; dropped afterwards."""
    name = f"taskq_test_{uuid.uuid4().hex[:12]}"
    yield f"{mongo_server}/{name}"
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_server)
    try:
        client.drop_database(name)
    finally:
        client.close()

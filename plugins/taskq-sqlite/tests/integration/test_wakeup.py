"""Wake-up sockets: stale ones are removed by writers, and the directory is tidied up."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from taskq.transport import Message
from taskq_sqlite import _wakeup
from taskq_sqlite.transport import SqliteTransport

pytestmark = pytest.mark.integration


def test_a_publisher_removes_the_socket_of_a_waiter_that_died(tmp_path: Path) -> None:
    transport = SqliteTransport(f"sqlite:///{tmp_path}/taskq.db")
    directory = _wakeup.signal_directory(transport.path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    stale = os.path.join(directory, "q-999999-deadbeef")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(stale)
    dead.close()  # the file stays, as after kill -9
    transport.publish("q", Message(b"", {}))
    assert not os.path.exists(stale)
    transport.close()
    os.rmdir(directory)


def test_the_last_waiter_to_close_removes_the_directory(tmp_path: Path) -> None:
    first = SqliteTransport(f"sqlite:///{tmp_path}/taskq.db")
    second = SqliteTransport(first.url)
    first.wait(["q"], 0.001)
    second.wait(["q"], 0.001)
    directory = _wakeup.signal_directory(first.path)
    assert len(os.listdir(directory)) == 2
    first.close()
    assert os.listdir(directory) == [os.path.basename(str(second._waiter and second._waiter.path))]
    second.close()
    assert not os.path.exists(directory)


def test_waiters_of_two_databases_use_different_directories(tmp_path: Path) -> None:
    assert _wakeup.signal_directory(str(tmp_path / "a.db")) != _wakeup.signal_directory(str(tmp_path / "b.db"))
    assert len(_wakeup.signal_directory(str(tmp_path / ("x" * 200)))) < 80  # socket paths stay short

"""Wake-ups of one database: announced in its own folder, stale ones removed, the folder tidied up."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from taskq.drivers.transport import Message
from taskq_sqlite import _database
from taskq_sqlite.transport import SqliteTransport

pytestmark = pytest.mark.integration


def test_a_publisher_removes_the_announcement_of_a_waiter_that_died(tmp_path: Path) -> None:
    transport = SqliteTransport(f"sqlite:///{tmp_path}/taskq.db")
    directory = _database.signal_directory(transport.path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    stale = os.path.join(directory, "q-999999-00000000deadbeef")
    open(stale, "xb").close()  # left behind, as after kill -9
    transport.publish("q", Message(b"", {}))
    assert not os.path.exists(stale)
    transport.close()
    os.rmdir(directory)


def test_waiting_creates_the_folder_for_this_user_only(tmp_path: Path) -> None:
    transport = SqliteTransport(f"sqlite:///{tmp_path}/taskq.db")
    transport.wait(["q"], 0.001)
    info = os.stat(_database.signal_directory(transport.path))
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.getuid()
    transport.close()


def test_the_last_waiter_to_close_removes_the_folder(tmp_path: Path) -> None:
    first = SqliteTransport(f"sqlite:///{tmp_path}/taskq.db")
    second = SqliteTransport(first.url)
    first.wait(["q"], 0.001)
    second.wait(["q"], 0.001)
    directory = _database.signal_directory(first.path)
    assert len(os.listdir(directory)) == 2
    first.close()
    assert second._wakeups.waiter is not None and second._wakeups.waiter.announcement is not None
    assert os.listdir(directory) == [os.path.basename(second._wakeups.waiter.announcement)]
    second.close()
    assert not os.path.exists(directory)


def test_each_database_has_its_own_folder_whatever_path_names_it(tmp_path: Path) -> None:
    assert _database.signal_directory(str(tmp_path / "a.db")) != _database.signal_directory(str(tmp_path / "b.db"))
    same = str(tmp_path / "sub" / ".." / "a.db")
    assert _database.signal_directory(same) == _database.signal_directory(str(tmp_path / "a.db"))

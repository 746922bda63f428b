"""Wake-ups between processes: announced datagram sockets, stale ones removed, fallback polling."""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq.drivers.support import wakeup
from taskq.drivers.support.wakeup import MTIME_GRAIN, QUEUE_KIND, RESULT_KIND, Notifier, Waiter

# Longest a wait that should end at once may take, in seconds; a pass never comes near it.
PROMPT = 10.0
# Seconds a helper process may take before the test gives up on it.
PROCESS_TIMEOUT = 60

MakeWaiter = Callable[..., Waiter]


@pytest.fixture
def directory(tmp_path: Path) -> str:
    folder = tmp_path / "wake"
    folder.mkdir()
    return str(folder)


@pytest.fixture
def notifier(directory: str) -> Iterator[Notifier]:
    notifier = Notifier(directory, QUEUE_KIND)
    yield notifier
    notifier.close()


@pytest.fixture
def make_waiter(directory: str) -> Iterator[MakeWaiter]:
    """Waiters in ``directory`` (or ``where``), closed after the test."""
    made: list[Waiter] = []

    def make(kind: str = QUEUE_KIND, *, where: str = directory, owns_directory: bool = False) -> Waiter:
        waiter = Waiter(where, kind, owns_directory=owns_directory)
        made.append(waiter)
        return waiter

    yield make
    for waiter in made:
        waiter.close()


def set_mtime(path: str, seconds: float) -> None:
    os.utime(path, ns=(int(seconds * 1e9), int(seconds * 1e9)))


def test_a_waiter_announces_itself_with_an_empty_file_named_by_kind_and_pid(make_waiter: MakeWaiter) -> None:
    waiter = make_waiter()
    assert waiter.is_registered and waiter.announcement is not None
    assert os.path.basename(waiter.announcement).startswith(f"q-{os.getpid()}-")
    assert os.path.getsize(waiter.announcement) == 0


def test_a_notify_wakes_every_waiter_of_its_kind(make_waiter: MakeWaiter, notifier: Notifier) -> None:
    first, second = make_waiter(), make_waiter()
    notifier.notify()
    assert first.block(PROMPT)
    assert second.block(PROMPT)


def test_a_notify_leaves_waiters_of_another_kind_asleep(make_waiter: MakeWaiter, notifier: Notifier) -> None:
    result_waiter = make_waiter(RESULT_KIND)
    notifier.notify()
    assert not result_waiter.drain()


def test_block_returns_false_when_nothing_came_before_the_timeout(make_waiter: MakeWaiter) -> None:
    assert not make_waiter().block(0.01)


def test_drain_discards_every_pending_wake_up(make_waiter: MakeWaiter, notifier: Notifier) -> None:
    waiter = make_waiter()
    notifier.notify()
    notifier.notify()
    assert waiter.drain()
    assert not waiter.drain()


def test_poke_wakes_the_waiter_from_within_its_process(make_waiter: MakeWaiter) -> None:
    waiter = make_waiter()
    waiter.poke()
    assert waiter.block(PROMPT)


def test_a_notify_with_no_directory_does_nothing(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "missing"), QUEUE_KIND)
    notifier.notify()
    notifier.close()


def test_close_withdraws_the_announcement(make_waiter: MakeWaiter, directory: str) -> None:
    waiter = make_waiter()
    waiter.close()
    assert not waiter.is_registered
    assert os.listdir(directory) == []


def test_the_announcement_of_a_killed_process_is_removed_by_the_next_notify(
    make_waiter: MakeWaiter, notifier: Notifier, directory: str
) -> None:
    live = make_waiter()
    code = """
        import sys, time
        from taskq.drivers.support.wakeup import Waiter

        Waiter(sys.argv[1], "q")
        print("announced", flush=True)
        time.sleep(600)
    """
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), directory], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "announced"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=PROCESS_TIMEOUT)
    assert len(os.listdir(directory)) == 2  # kill -9 withdrew nothing
    notifier.notify()
    assert live.announcement is not None
    assert os.listdir(directory) == [os.path.basename(live.announcement)]
    assert live.drain()


def test_a_process_that_exits_without_closing_withdraws_its_announcement_and_owned_directory(
    tmp_path: Path,
) -> None:
    owned = tmp_path / "owned"
    code = """
        import sys
        from taskq.drivers.support.wakeup import Waiter

        assert Waiter(sys.argv[1], "q", owns_directory=True).is_registered
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(owned)],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert not owned.exists()


def test_a_forked_child_closing_its_copy_leaves_the_parents_announcement(
    make_waiter: MakeWaiter, notifier: Notifier
) -> None:
    waiter = make_waiter()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            waiter.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert waiter.announcement is not None and os.path.exists(waiter.announcement)
    notifier.notify()
    assert waiter.drain()


def test_a_waiter_announced_in_the_same_clock_tick_as_the_last_listing_is_still_found(
    make_waiter: MakeWaiter, notifier: Notifier, directory: str
) -> None:
    recent = time.time() + 3600  # an mtime not MTIME_GRAIN old yet: the listing read now is not trusted
    set_mtime(directory, recent)
    notifier.notify()
    waiter = make_waiter()
    set_mtime(directory, recent)  # as if the coarse clock had not ticked since
    notifier.notify()
    assert waiter.drain()


def test_a_trusted_listing_is_reused_until_the_directory_changes(
    make_waiter: MakeWaiter, notifier: Notifier, directory: str
) -> None:
    old = time.time() - 100 * MTIME_GRAIN
    set_mtime(directory, old)
    notifier.notify()  # reads the listing once: empty
    waiter = make_waiter()
    set_mtime(directory, old)
    notifier.notify()
    assert not waiter.drain(), "the listing was read again though the mtime said nothing changed"
    set_mtime(directory, time.time())
    notifier.notify()
    assert waiter.drain()


def test_a_waiter_that_cannot_announce_itself_polls_and_says_so(
    make_waiter: MakeWaiter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="taskq.drivers.support.wakeup"):
        waiter = make_waiter(where=str(tmp_path / "missing"))
    assert not waiter.is_registered
    assert "waiting falls back to polling" in caplog.text
    started = time.monotonic()
    assert not waiter.block(timeout=10 * PROMPT)  # returns after the fallback poll interval instead
    assert time.monotonic() - started < PROMPT
    waiter.poke()
    assert waiter.block(PROMPT)


def test_an_owned_directory_is_created_private_and_removed_by_the_last_waiter(
    make_waiter: MakeWaiter, tmp_path: Path
) -> None:
    owned = str(tmp_path / "owned")
    first = make_waiter(where=owned, owns_directory=True)
    second = make_waiter(where=owned, owns_directory=True)
    assert first.is_registered and second.is_registered
    assert stat.S_IMODE(os.stat(owned).st_mode) == 0o700
    first.close()
    assert len(os.listdir(owned)) == 1
    second.close()
    assert not os.path.exists(owned)


def test_an_owned_directory_that_is_not_a_directory_is_refused_with_advice(
    make_waiter: MakeWaiter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    owned = tmp_path / "owned"
    owned.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="taskq.drivers.support.wakeup"):
        waiter = make_waiter(where=str(owned), owns_directory=True)
    assert not waiter.is_registered
    assert "remove it to restore instant wake-ups" in caplog.text


@pytest.fixture
def socket_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Addresses as off Linux (socket files in the temporary directory), which this machine never uses."""
    monkeypatch.setattr(wakeup, "IS_LINUX", False)


@pytest.mark.usefixtures("socket_files")
def test_off_linux_a_socket_file_carries_the_wake_up_and_goes_with_close(
    make_waiter: MakeWaiter, notifier: Notifier
) -> None:
    waiter = make_waiter()
    assert waiter.announcement is not None
    address = wakeup.socket_address(waiter.announcement.rpartition("-")[2])
    assert stat.S_ISSOCK(os.stat(address).st_mode)
    notifier.notify()
    assert waiter.block(PROMPT)
    waiter.close()
    assert not os.path.exists(address)


@pytest.mark.usefixtures("socket_files")
def test_off_linux_a_dead_waiters_socket_file_is_removed_with_its_announcement(
    notifier: Notifier, directory: str
) -> None:
    token = "00000000deadbeef"
    address = wakeup.socket_address(token)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(address)
    dead.close()  # the file stays, as after kill -9
    announcement = Path(directory, f"q-999999-{token}")
    announcement.touch()
    notifier.notify()
    assert not announcement.exists()
    assert not os.path.exists(address)

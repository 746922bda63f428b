"""taskq.drivers.support.connections: small helpers the drivers share."""

from __future__ import annotations

import os

from taskq.drivers.support.connections import current_pid, mask_url


def test_current_pid_is_this_process_and_follows_a_fork() -> None:
    assert current_pid() == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, str(current_pid() == os.getpid() != 0).encode())
        os._exit(0)
    os.close(write)
    try:
        answer = os.read(read, 16)
    finally:
        os.close(read)
        os.waitpid(child, 0)
    assert answer == b"True"
    assert current_pid() == os.getpid()


def test_mask_url_hides_the_password() -> None:
    assert mask_url("redis://user:secret@host:6379/0") == "redis://user:****@host:6379/0"

"""Helpers for drivers that hold connections: URLs masked for logs, the pid checked cheaply after a fork."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def current_pid() -> int:
    """This process's id, kept up to date across forks without a system call per ask.

    Drivers compare it with the id they recorded at connect time, on every command, to
    notice that they run in a forked child and must open connections of their own.
    """
    return _pid


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``****``, safe to log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:****@{netloc}"))


__all__ = ["current_pid", "mask_url"]

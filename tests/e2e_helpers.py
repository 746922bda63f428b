"""Helpers for the end-to-end tests: reading the run log, waiting on a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def runs(e2e_env: dict[str, str]) -> list[tuple[str, str, int]]:
    """Every line of the run log as (event, key, pid)."""
    out = []
    for line in Path(e2e_env["E2E_LOG"]).read_text(encoding="utf-8").splitlines():
        event, key, pid = line.split()
        out.append((event, key, int(pid)))
    return out


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

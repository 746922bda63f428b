"""Fixtures of the integration tests: a database file of the test's own, and a transport on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq_sqlite.transport import SqliteTransport


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/taskq.db"


@pytest.fixture
def transport(url: str) -> Iterator[SqliteTransport]:
    transport = SqliteTransport(url)
    transport.connect()
    yield transport
    transport.close()

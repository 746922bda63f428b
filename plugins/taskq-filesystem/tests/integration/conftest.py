"""Fixtures of the integration tests: a root directory of the test's own, and a transport on it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq_filesystem.transport import FilesystemTransport


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "taskq"


@pytest.fixture
def url(root: Path) -> str:
    return f"file://{root}"


@pytest.fixture
def transport(url: str) -> Iterator[FilesystemTransport]:
    """A transport on the root, its folders made."""
    with contextlib.closing(FilesystemTransport(url)) as transport:
        transport.connect()
        yield transport

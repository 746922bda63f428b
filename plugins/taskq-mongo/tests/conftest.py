"""Fixtures for taskq-mongo's tests: a private MongoDB-protocol server, a database per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pymongo
import pytest

from taskq.testing.conformance import SECANTUSDB, free_port, running_server


def answers(url: str) -> Callable[[], bool]:
    """Whether the server at ``url`` answers a ping (it accepts connections a little before)."""

    def ready() -> bool:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(url, serverSelectionTimeoutMS=200)
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()
        return True

    return ready


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mongodb://127.0.0.1:PORT``: secantusd-py started for this session, stopped at the end."""
    port = free_port()
    url = f"mongodb://127.0.0.1:{port}"
    storage = tmp_path_factory.mktemp("secantus")
    args = ("--host", "{host}", "--port", "{port}", "--storage-path", str(storage / "data"))
    with running_server(SECANTUSDB, *args, port=port, ready=answers(url), log=storage / "server.log"):
        yield url


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

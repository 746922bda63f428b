"""taskq's pytest plugin (entry point ``pytest11``): fixtures for an app and a worker.

Fixtures:

* ``taskq_config`` — settings for the test app; override it in a ``conftest.py`` to
  point at another broker. By default a private in-process ``memory://`` broker and
  result backend, so no file or server is touched.
* ``taskq_app`` — an :class:`taskq.App` built from ``taskq_config`` (config files and
  ``TASKQ_*`` variables are not read, so tests do not depend on the machine).
* ``taskq_worker`` — a real worker for ``taskq_app`` running in a thread, ready when
  the test starts and stopped (warm) when it ends. Register tasks on ``taskq_app``
  before requesting it, or use ``taskq_worker_options`` to choose pool and queues.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.worker.worker import Worker


@pytest.fixture
def taskq_config() -> dict[str, object]:
    """Settings for ``taskq_app``; a private in-process broker and backend by default."""
    url = f"memory://{uuid.uuid4().hex}"
    return {"broker_url": url, "result_backend": url}


@pytest.fixture
def taskq_worker_options() -> dict[str, object]:
    """Keyword arguments for the ``taskq_worker`` fixture's ``start_worker`` call."""
    return {}


@pytest.fixture
def taskq_app(taskq_config: dict[str, object]) -> Iterator[App]:
    """A taskq app for one test."""
    from taskq.app import App

    app = App("tests", read_config=False, **cast("dict[str, Any]", taskq_config))
    yield app
    app.close()


@pytest.fixture
def taskq_worker(taskq_app: App, taskq_worker_options: dict[str, object]) -> Iterator[Worker]:
    """A worker consuming for ``taskq_app`` in a background thread."""
    from taskq.testing.worker import start_worker

    with start_worker(taskq_app, **taskq_worker_options) as worker:  # type: ignore[arg-type]  # options are start_worker's
        yield worker

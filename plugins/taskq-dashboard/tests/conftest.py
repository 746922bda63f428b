"""The live cluster for the dashboard's tests, shared by the tests of a session (starting it
costs seconds); each test sends tasks of its own and finds them by their ids, so the tests do
not depend on each other's order."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from dashboard_helpers import APP_MODULE, TIMEOUT, TOKEN, LiveCluster, start_dashboard, stop  # noqa: E402

from taskq import App  # noqa: E402
from taskq.testing import WorkerProcess  # noqa: E402


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    folder = tmp_path_factory.mktemp("cluster")
    (folder / "dash_app.py").write_text(APP_MODULE, encoding="utf-8")
    queue, extra = f"dash-{uuid.uuid4().hex[:8]}", f"dash-extra-{uuid.uuid4().hex[:8]}"
    broker = f"sqlite:///{folder}/broker.db"
    env = {
        "PYTHONPATH": str(folder),
        "TASKQ_BROKER_URL": broker,
        "TASKQ_RESULT_BACKEND": broker,
        "TASKQ_TASK_DEFAULT_QUEUE": queue,
    }
    worker = WorkerProcess(
        [
            sys.executable,
            "-m",
            "taskq",
            "worker",
            "-A",
            "dash_app",
            "-P",
            "solo",
            "-E",
            "-l",
            "info",
            "-Q",
            f"{queue},{extra}",
        ],
        folder / "worker.log",
        env=env,
        cwd=folder,
    )
    dashboard = None
    try:
        worker.wait_ready(TIMEOUT)
        dashboard, url = start_dashboard(
            folder, env, folder / "history.db", "--token", TOKEN, "--inspect-interval", "0.5"
        )
        # task-sent events: a task due later is on the dashboard (PENDING) before a worker takes it
        app = App(
            "dash-tests-client",
            broker_url=broker,
            result_backend=broker,
            task_default_queue=queue,
            task_send_sent_event=True,
        )
        yield LiveCluster(folder, app, worker, dashboard, url, queue, extra, env)
    finally:
        if dashboard is not None:
            stop(dashboard)
        stop(worker)

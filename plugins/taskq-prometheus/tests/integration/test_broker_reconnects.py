"""A worker serving its metrics counts losing its broker and finding it again (Redis behind a
proxy the test cuts), read from the consumer's log records."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq.testing import WorkerProcess

from .redis_proxy import Proxy, check_redis
from .test_worker_metrics import APP_MODULE, TIMEOUT, free_port, wait_for_metric

pytestmark = pytest.mark.integration

Value = Callable[..., float]


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    check_redis()
    found = Proxy()
    yield found
    found.close()


def test_a_worker_counts_losing_its_broker_and_reconnecting(
    tmp_path: Path, proxy: Proxy, get_metrics: Callable[[str], str], metric: Value
) -> None:
    (tmp_path / "prom_app.py").write_text(APP_MODULE)
    port = free_port()
    queue = f"prom-reconnect-{uuid.uuid4().hex}"
    worker = WorkerProcess(
        [sys.executable, "-m", "taskq", "worker", "-A", "prom_app", "-P", "solo", "-l", "info", "-Q", queue],
        tmp_path / "worker.log",
        env={
            "PYTHONPATH": str(tmp_path),
            "TASKQ_BROKER_URL": f"redis://127.0.0.1:{proxy.port}/0",
            "TASKQ_RESULT_BACKEND": f"sqlite:///{tmp_path}/results.db",
            "TASKQ_PROMETHEUS_PORT": str(port),
        },
        cwd=tmp_path,
    )
    try:
        worker.wait_ready()
        url = f"http://127.0.0.1:{port}/metrics"
        assert metric(get_metrics(url), "taskq_broker_reconnects_total") == 0
        proxy.cut()
        worker.wait_for("lost the broker at ", TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while metric(get_metrics(url), "taskq_broker_connection_errors_total") < 1:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.05)
        proxy.restore()
        worker.wait_for("answers again", TIMEOUT)
        text = wait_for_metric(url, get_metrics, lambda t: metric(t, "taskq_broker_reconnects_total") >= 1)
        assert metric(text, "taskq_broker_connection_errors_total") >= 1
    finally:
        worker.kill()
        print(worker.log())

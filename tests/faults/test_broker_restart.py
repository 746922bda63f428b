"""A broker restarted in the middle of a run of acks-late tasks with results.

A private broker of the test's own (a redis-server on a free port that keeps every write
in its append-only file; a RabbitMQ node on other ports) is killed while a worker runs
acks-late tasks, and started again on the same port a couple of seconds later. Checked:
the worker reconnects (same process, it never exits), every task ends and its result is
readable (lost 0), and extra runs stay within what the worker held when the broker went.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import wait_until
from faultkit import Ledger, PrivateRedis, Worker, free_port, run_counts, worker_args

from taskq import App
from taskq.testing import settings_env

pytestmark = pytest.mark.integration

TASKS = 60
TASK_SECONDS = 0.1
PREFETCH = 4
# Seconds the broker stays down.
OUTAGE_SECONDS = 2.0
RESULT_TIMEOUT = 90.0
# Seconds a private RabbitMQ node may take to start (about 4 s on an idle machine) and to stop.
RABBITMQ_START_TIMEOUT = 60.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder)
    server.start()
    yield server
    server.kill()


class PrivateRabbitMQ:
    """A RabbitMQ node of the test's own, on free ports, loopback only (shared/SERVICES.md).

    The node runs as the ``rabbitmq`` user, so its folder is one of its own under /tmp
    (pytest's are private to root), and it reads a config file of its own: the machine's
    /etc/rabbitmq/rabbitmq.conf names port 5672, which the shared node holds.
    """

    def __init__(self) -> None:
        if shutil.which("rabbitmq-server") is None:
            pytest.skip("rabbitmq-server is not installed: the private-node restart test needs it")
        self.folder = Path(tempfile.mkdtemp(prefix="taskq-faults-rabbitmq-"))
        self.port = free_port()
        self.node = f"taskq-faults-{os.getpid()}@localhost"
        (self.folder / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n", encoding="utf-8")
        for path in (self.folder, self.folder / "enabled_plugins", self.folder / "rabbitmq.conf"):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self.folder / "node.pid"),
            # no management or prometheus listeners: they would take the shared node's ports
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True, timeout=60)
        try:
            wait_until(self._answers, RABBITMQ_START_TIMEOUT, f"the private RabbitMQ node on port {self.port}")
        except AssertionError:
            self.kill()
            pytest.skip(f"a private RabbitMQ node did not start within {RABBITMQ_START_TIMEOUT}s here")

    def _answers(self) -> bool:
        import amqp

        try:
            conn = amqp.Connection(f"127.0.0.1:{self.port}", userid="guest", password="guest", connect_timeout=1)
            conn.connect()
            conn.close()
        except Exception:
            return False
        return True

    def pid(self) -> int | None:
        try:
            return int((self.folder / "node.pid").read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """A clean stop (SIGTERM): RabbitMQ does not sync acknowledgements to disk at once, so
        after a kill -9 it hands out again messages acknowledged just before, which no worker
        can prevent; a clean stop keeps them."""
        self.kill(signal.SIGTERM)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        wait_until(lambda: not _exists(pid), 30, f"the RabbitMQ node (pid {pid}) to exit")
        (self.folder / "node.pid").unlink(missing_ok=True)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child of another process stays a zombie until reaped; it is gone for our purpose
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def restart_mid_run(broker: str, settings: dict[str, object], stop, start, tmp_path: Path, ledger: Ledger) -> None:  # type: ignore[no-untyped-def]
    """Run TASKS acks-late tasks; ``stop`` the broker when some have ended, ``start`` it again."""

    row = ledger.row("broker restart", broker)
    started_at = time.monotonic()
    run_log = tmp_path / "runs.log"
    run_log.touch()
    env = {"E2E_LOG": str(run_log), "TASKQ_WORKER_LEASE_SECONDS": "2.0"}
    env.update(settings_env(settings))
    worker = Worker(
        worker_args("restart@test", "--prefetch-multiplier", str(PREFETCH)), env, tmp_path / "w.log", tmp_path
    )
    client = App("faults-restart", read_config=False, **settings)
    try:
        worker.wait_ready()
        pid = worker.pid
        results = [client.send_task("e2e_app.tasks.slow", (f"r{i}", TASK_SECONDS)) for i in range(TASKS)]
        row.tried += TASKS
        wait_until(lambda: len(run_counts(run_log, "end")) >= TASKS // 4, 60, "a quarter of the tasks to end")
        stop()
        row.kills += 1
        time.sleep(OUTAGE_SECONDS)
        start()
        deadline = time.monotonic() + RESULT_TIMEOUT
        while len(run_counts(run_log, "end")) < TASKS and worker.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        ends = run_counts(run_log, "end")
        starts = run_counts(run_log, "start")
        lost = [f"r{i}" for i in range(TASKS) if not ends[f"r{i}"]]
        duplicates = sum(count - 1 for count in starts.values() if count > 1)
        row.lost += len(lost)
        row.duplicates += duplicates
        row.bound += PREFETCH
        assert worker.alive() and worker.pid == pid, f"the worker did not survive the restart:\n{worker.log()[-3000:]}"
        assert not lost, f"{len(lost)} of {TASKS} tasks never ended: {lost[:20]}\n{worker.log()[-3000:]}"
        assert duplicates <= PREFETCH, f"{duplicates} duplicate runs; the worker held at most {PREFETCH}"
        assert [r.get(timeout=RESULT_TIMEOUT) for r in results] == [f"r{i}" for i in range(TASKS)]
    finally:
        worker.kill()
        client.close()
        row.seconds += time.monotonic() - started_at


def test_a_redis_restart_mid_run_loses_no_acks_late_task(private_redis: PrivateRedis, tmp_path: Path, ledger: Ledger):
    settings: dict[str, object] = {"broker_url": private_redis.url, "result_backend": private_redis.url}
    restart_mid_run("redis", settings, private_redis.kill, private_redis.start, tmp_path, ledger)


def test_a_rabbitmq_restart_mid_run_loses_no_acks_late_task(tmp_path: Path, ledger: Ledger):
    node = PrivateRabbitMQ()
    try:
        node.start()
        settings: dict[str, object] = {"broker_url": node.url, "result_backend": f"sqlite:///{tmp_path}/results.db"}
        restart_mid_run("amqp", settings, node.stop, node.start, tmp_path, ledger)
    finally:
        node.kill()
        shutil.rmtree(node.folder, ignore_errors=True)

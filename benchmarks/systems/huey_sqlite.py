"""huey with ``SqliteHuey`` and its consumer, one worker thread, default polling."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

from benchmarks import tasks_huey
from benchmarks.systems import Sender, System, script


class HueySqlite(System):
    name = "huey"
    description = "huey SqliteHuey, huey_consumer -w 1 -k thread (its defaults; default polling)"
    default_count = 5000
    default_roundtrips = 100  # 50-110 ms each: the consumer and get() both poll
    normal_sync = False  # True: synchronous=NORMAL, like taskq-sqlite (huey's default is FULL)

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.stored, self.stored_tasks = tasks_huey.make_huey(directory, True, self.normal_sync)
        self.ignored, self.ignored_tasks = tasks_huey.make_huey(directory, False, self.normal_sync)

    def sender(self, store_results: bool, io: bool = False) -> Sender:
        tasks = self.stored_tasks if store_results else self.ignored_tasks
        return tasks[tasks_huey.IO if io else tasks_huey.NOOP]

    def round_trip(self, timeout: float) -> None:
        self.stored_tasks[tasks_huey.NOOP](None).get(blocking=True, timeout=timeout)

    def worker_command(self, store_results: bool, processes: int = 1) -> list[str]:
        consumer = script("huey_consumer")
        prefix = [consumer] if consumer else [sys.executable, "-m", "huey.bin.huey_consumer"]
        target = "benchmarks.tasks_huey." + ("huey" if store_results else "huey_noresults")
        # huey's defaults are -w 1 -k thread; its default log level is INFO (no -q, no -v).
        workers = ["-w", "1", "-k", "thread"] if processes == 1 else ["-w", str(processes), "-k", "process"]
        return [*prefix, target, *workers]

    def close(self) -> None:
        for instance in (self.stored, self.ignored):
            instance.storage.close()

    @classmethod
    def versions(cls) -> str:
        return f"huey {version('huey')}"


class HueySqliteNormalSync(HueySqlite):
    """huey as above, with ``synchronous=NORMAL``: the durability taskq-sqlite chooses."""

    name = "huey-normal"
    description = "huey as above, but PRAGMA synchronous=NORMAL (no fsync per commit, like taskq)"
    normal_sync = True

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env[tasks_huey.SYNCHRONOUS_ENV] = "NORMAL"
        return env

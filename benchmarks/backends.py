"""Store-and-fetch rate of every installed result backend, against Redis's in the same run.

    python -m benchmarks.backends [--count 2000] [--only redis,sqlite,...]

For each backend: ``store_result`` of a small SUCCESS record then ``get_task_meta`` of
it, ``--count`` times from one thread, and the same in batches read back with
``get_many``. Servers SERVICES.md keeps running (Redis, PostgreSQL, MariaDB) are used as
they are, on a private key prefix, table or database name; memcached, the
MongoDB-protocol server and the S3/DynamoDB API server are started here on free ports
and stopped at the end. A backend whose distribution or server is missing is reported
as "n/a" with the reason, never silently dropped. Ratios are against Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from taskq import App, states

# Seconds a helper server may take to accept connections.
SERVER_START_TIMEOUT = 20.0
DEFAULT_COUNT = 2000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = SERVER_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing accepted connections on 127.0.0.1:{port} within {timeout}s")


@contextlib.contextmanager
def server(command: list[str], port: int) -> Iterator[None]:
    """Run ``command`` (a server listening on ``port``) for the duration of the block."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def executable(name: str) -> str | None:
    """A command on PATH or beside this Python (a venv run without activating it)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def measure(url: str, count: int, options: dict[str, object] | None = None) -> tuple[float, float]:
    """(store+fetch pairs per second, records per second stored then read back with get_many)."""
    app = App(
        "bench-backends",
        broker="memory://bench",
        backend=url,
        read_config=False,
        result_backend_transport_options=options or {},
        set_as_current=False,
    )
    backend = app.new_backend()
    try:
        ids = [uuid.uuid4().hex for _ in range(count)]
        started = time.perf_counter()
        for task_id in ids:
            backend.store_result(task_id, None, states.SUCCESS)
            backend.get_task_meta(task_id)
        pairs = count / (time.perf_counter() - started)
        batch_ids = [uuid.uuid4().hex for _ in range(count)]
        started = time.perf_counter()
        for task_id in batch_ids:
            backend.store_result(task_id, None, states.SUCCESS)
        for offset in range(0, count, 100):
            backend.get_many(batch_ids[offset : offset + 100])
        batched = count / (time.perf_counter() - started)
        for task_id in ids + batch_ids:
            backend.forget(task_id)
        return pairs, batched
    finally:
        backend.close()


Runner = Callable[[int], tuple[float, float]]


def runners(workdir: Path) -> dict[str, tuple[str, Runner]]:
    """Backend name -> (what it needs, how to measure it)."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"

    def plain(url: str, **options: object) -> Runner:
        return lambda count: measure(url, count, dict(options))

    def memcached(count: int) -> tuple[float, float]:
        binary = shutil.which("memcached")
        if binary is None:
            raise RuntimeError("memcached is not installed (apt-get install -y memcached)")
        port = free_port()
        with server([binary, "-u", "memcache", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"], port):
            return measure(f"cache+memcached://127.0.0.1:{port}/", count)

    def mongo(count: int) -> tuple[float, float]:
        binary = executable("secantusd-py")
        if binary is None:
            raise RuntimeError("no MongoDB-protocol server (pip install secantusdb)")
        port = free_port()
        with server([binary, "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:"], port):
            return measure(f"mongodb://127.0.0.1:{port}/{prefix}", count)

    def moto(scheme: str) -> Runner:
        def run(count: int) -> tuple[float, float]:
            binary = executable("moto_server")
            if binary is None:
                raise RuntimeError("no S3/DynamoDB API server (pip install 'moto[server]')")
            port = free_port()
            options = {"endpoint_url": f"http://127.0.0.1:{port}", "region": "us-east-1"}
            # The local API server takes any keys; real AWS credentials are never needed here.
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            with server([binary, "-H", "127.0.0.1", "-p", str(port)], port):
                if scheme == "s3":
                    return measure(f"s3://{prefix}/results", count, {**options, "create_bucket": True})
                return measure(f"dynamodb://testing:testing@us-east-1:{port}/{prefix}", count, options)

        return run

    return {
        "redis": ("taskq_redis", plain("redis://127.0.0.1:6379/14")),
        "sqlite": ("taskq_sqlite", plain(f"sqlite:///{workdir / 'results.db'}")),
        "filesystem": ("taskq_filesystem", plain(f"file://{workdir / 'results'}")),
        "postgresql": ("taskq_sqlalchemy", plain("db+postgresql+psycopg://postgres@127.0.0.1:5432/test")),
        "mariadb": ("taskq_sqlalchemy", plain("db+mysql+pymysql://root@127.0.0.1:3306/test")),
        "memcached": ("taskq_memcached", memcached),
        "mongodb": ("taskq_mongo", mongo),
        "dynamodb": ("taskq_dynamodb", moto("dynamodb")),
        "s3": ("taskq_s3", moto("s3")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="records per measure")
    parser.add_argument("--only", help="comma-separated backend names")
    args = parser.parse_args(argv)
    rows: list[tuple[str, float | None, float | None, str]] = []
    with tempfile.TemporaryDirectory(prefix="taskq-bench-backends-") as tmp:
        table = runners(Path(tmp))
        names = args.only.split(",") if args.only else list(table)
        for name in names:
            package, run = table[name]
            if not installed(package):
                rows.append((name, None, None, f"{package.replace('_', '-')} is not installed"))
                continue
            try:
                pairs, batched = run(args.count)
            except Exception as exc:
                rows.append((name, None, None, f"{type(exc).__name__}: {exc}".splitlines()[0][:100]))
                continue
            rows.append((name, pairs, batched, ""))
            print(f"... {name}: {pairs:,.0f} store+fetch/s, {batched:,.0f}/s batched", file=sys.stderr)
    reference = next((r for r in rows if r[0] == "redis" and r[1]), None)
    print(f"{'backend':<12} {'store+fetch/s':>14} {'batched/s':>10} {'vs redis':>9}  note")
    for name, pairs, batched, note in rows:
        if pairs is None or batched is None:
            print(f"{name:<12} {'n/a':>14} {'n/a':>10} {'n/a':>9}  {note}")
            continue
        ratio = f"{pairs / reference[1]:.2f}" if reference and reference[1] else "n/a"
        print(f"{name:<12} {pairs:>14,.0f} {batched:>10,.0f} {ratio:>9}  {note}")
    print(
        f"\nstore+fetch: store_result then get_task_meta, one record at a time; batched: {args.count} stores, "
        f"then get_many by 100; one thread; ratio > 1 means faster than Redis"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

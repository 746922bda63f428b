"""The README's demo: a worker on the embedded SQLite default, a batch of tasks, results.

Starts ``taskq worker`` as a subprocess, sends a mixed batch (quick tasks, slow ones,
flaky ones that succeed on retry, ones that fail for good, one that expires, one the
worker does not know), shows progress while they run, prints the results, and stops
the worker with SIGTERM. Exits 0 when every task ended as it should.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Seconds the whole batch may take before the demo gives up.
DEADLINE = 120.0
# Seconds the worker may take to stop after SIGTERM.
STOP_TIMEOUT = 30.0


def main() -> int:
    workdir = Path.cwd()
    for leftover in workdir.glob("taskq.db*"):
        leftover.unlink()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    sys.path.insert(0, str(HERE))
    from demo_tasks import add, always_times_out, app, divide, flaky, slow_square

    from taskq import states

    print(f"== taskq demo in {workdir} (broker and results: {app.conf['broker_url']})")
    log_path = workdir / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "taskq", "worker", "-A", "demo_tasks", "-l", "info", "-c", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        expected: dict[str, str] = {}
        results = []
        started = time.monotonic()
        for i in range(200):
            r = add.delay(i, i)
            results.append(r)
            expected[r.id] = states.SUCCESS
        for i in range(10):
            r = slow_square.delay(i)
            results.append(r)
            expected[r.id] = states.SUCCESS
        for i in range(5):
            r = flaky.delay(i)
            results.append(r)
            expected[r.id] = states.SUCCESS
        for i in range(2):
            r = always_times_out.delay(i)
            results.append(r)
            expected[r.id] = states.FAILURE
        r = divide.delay(1, 0)
        results.append(r)
        expected[r.id] = states.FAILURE
        r = add.apply_async((1, 2), countdown=1.0)
        results.append(r)
        expected[r.id] = states.SUCCESS
        r = add.apply_async((1, 2), expires=-1)
        results.append(r)
        expected[r.id] = states.REVOKED
        r = app.send_task("demo_tasks.no_such_task", (1,))
        results.append(r)
        expected[r.id] = states.FAILURE
        print(f"sent {len(results)} tasks in {time.monotonic() - started:.3f}s; waiting for the worker...")

        backend = app.backend
        ids = [r.id for r in results]
        interactive = sys.stdout.isatty()
        last_line = ""
        while True:
            metas = backend.get_many(ids)
            counts = Counter(str(m["status"]) for m in metas.values())
            done = sum(counts[s] for s in states.READY_STATES)
            line = (
                f"  {done}/{len(ids)} finished ("
                + ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items()))
                + ")"
            )
            if interactive:
                print(f"\r{line}".ljust(78), end="", flush=True)
            elif line != last_line:
                print(line, flush=True)
            last_line = line
            if done == len(ids):
                break
            if time.monotonic() - started > DEADLINE:
                print(f"\nthe batch did not finish within {DEADLINE:.0f}s; see {log_path}")
                return 1
            if worker.poll() is not None:
                print(f"\nthe worker exited early (code {worker.returncode}); see {log_path}")
                return 1
            time.sleep(0.1)
        print(f"{chr(10) if interactive else ''}all {len(ids)} tasks finished in {time.monotonic() - started:.2f}s\n")

        print("a few results:")
        print(f"  add(7, 7)          -> {results[7].get(timeout=5)}")
        print(f"  slow_square(9)     -> {results[209].get(timeout=5)}")
        print(f"  flaky(0)           -> {results[210].get(timeout=5)!r}")
        for r in results[215:]:
            if r.state != states.SUCCESS:
                error = r.result
                print(f"  {r.id[:8]}  {r.state:<8} {type(error).__name__}: {error}")
        wrong = [(rid, expected[rid], metas[rid]["status"]) for rid in ids if metas[rid]["status"] != expected[rid]]
        dead = app.transport.dead_letters()
        print(f"\ndead-lettered messages: {len(dead)}")
        for letter in dead:
            print(f"  {letter.queue}: {letter.reason[:100]}")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            code = worker.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            code = worker.wait(STOP_TIMEOUT)
    print(f"worker stopped on SIGTERM (exit code {code}); its log is {log_path}")
    if wrong:
        print(f"UNEXPECTED: {len(wrong)} task(s) ended in the wrong state: {wrong[:5]}")
        return 1
    print("every task ended as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())

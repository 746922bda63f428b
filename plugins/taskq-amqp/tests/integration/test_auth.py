"""A login RabbitMQ refuses (ACCESS_REFUSED) fails at once, at worker start and on a send.

Against the shared RabbitMQ with a wrong password for guest: a ConfigError within a
couple of seconds that names broker_url and never the password, where it was 20 s of
retries ending in "is it running?".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from taskq import App
from taskq.errors import ConfigError

pytestmark = pytest.mark.integration

WRONG = "Wrong-Amqp-Pw-5Tz8-distinctive"
URL = f"amqp://guest:{WRONG}@127.0.0.1:5672//"
# Longest a refused login may take to be reported, in seconds (one connection attempt).
AT_ONCE = 3.0
WORKER_EXIT_TIMEOUT = 30.0


def test_a_refused_login_fails_a_send_at_once_naming_broker_url() -> None:
    app = App("amqpauth", broker=URL, backend="disabled", read_config=False)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        app.send_task("amqpauth.add", [1, 2], queue=f"auth-{uuid.uuid4().hex[:8]}")
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < AT_ONCE, f"took {elapsed:.1f}s: {message}"
    assert "refused the credentials" in message and "broker_url" in message, message
    assert WRONG not in message and "is it running" not in message, message


def test_a_worker_with_a_refused_login_exits_at_once_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "amqpapp.py").write_text(
        "from taskq import App\napp = App('amqpapp')\n@app.task\ndef add(x, y):\n    return x + y\n", encoding="utf-8"
    )
    env = {**os.environ, "TASKQ_BROKER_URL": URL, "TASKQ_RESULT_BACKEND": "disabled", "PYTHONPATH": str(tmp_path)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "taskq", "-A", "amqpapp", "worker", "-P", "solo", "-Q", f"auth-{uuid.uuid4().hex[:8]}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_EXIT_TIMEOUT,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "refused the credentials" in output and "broker_url" in output, output
    assert WRONG not in output and "Traceback" not in output, output
    assert elapsed < 10, f"the worker took {elapsed:.1f}s to give up:\n{output}"

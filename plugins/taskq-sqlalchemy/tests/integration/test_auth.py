"""Credentials the database refuses fail at once, saying so and naming result_backend.

MariaDB here lets root in with an empty password only, so a wrong password is refused
(1045). PostgreSQL here trusts every connection from 127.0.0.1, so a wrong password is
accepted: what can be tested is a user that does not exist (refused the same way).
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

WRONG = "Wrong-Db-Pw-6Rb3-distinctive"
AT_ONCE = 3.0
WORKER_EXIT_TIMEOUT = 30.0
REFUSED = [
    f"db+mysql://root:{WRONG}@127.0.0.1:3306/test",
    f"db+postgresql://no_such_user_{uuid.uuid4().hex[:6]}:{WRONG}@127.0.0.1:5432/test",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_credentials_fail_a_client_call_at_once(url: str) -> None:
    app = App("dbauth", broker="memory://dbauth", backend=url, read_config=False)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        app.AsyncResult(str(uuid.uuid4())).get(timeout=30)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < AT_ONCE, f"took {elapsed:.1f}s: {message}"
    assert "refused the credentials" in message and "result_backend" in message, message
    assert WRONG not in message and "running" not in message, message


def test_a_worker_with_a_refused_database_password_exits_at_once(tmp_path: Path) -> None:
    (tmp_path / "dbapp.py").write_text(
        "from taskq import App\napp = App('dbapp')\n@app.task\ndef add(x, y):\n    return x + y\n", encoding="utf-8"
    )
    env = {
        **os.environ,
        # core's own broker: this distribution's tests run with no other transport installed
        "TASKQ_BROKER_URL": "memory://dbauth",
        "TASKQ_RESULT_BACKEND": REFUSED[0],
        "PYTHONPATH": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "taskq", "-A", "dbapp", "worker", "-P", "solo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_EXIT_TIMEOUT,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert " ready (pool=" not in output and "Traceback" not in output, output
    assert "refused the credentials" in output and "result_backend" in output, output
    assert WRONG not in output, output

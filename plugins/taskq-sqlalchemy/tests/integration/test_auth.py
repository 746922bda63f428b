"""Credentials the database refuses fail at once, saying so and naming result_backend.

MariaDB here lets root in with an empty password only, so a wrong password is refused
(1045). PostgreSQL here trusts every connection from 127.0.0.1, so a wrong password is
accepted: what can be tested is a user that does not exist (refused the same way).
"""

from __future__ import annotations

import time
import uuid

import pytest

from taskq import App
from taskq.errors import ConfigError
from taskq.testing import run_worker

pytestmark = pytest.mark.integration

WRONG = "Wrong-Db-Pw-6Rb3-distinctive"
AT_ONCE = 3.0
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


def test_a_worker_with_a_refused_database_password_exits_at_once() -> None:
    # core's own broker: this distribution's tests run with no other transport installed
    run = run_worker({"broker_url": "memory://dbauth", "result_backend": REFUSED[0]})
    output = run.output
    assert run.returncode != 0, output
    assert " ready (pool=" not in output and "Traceback" not in output, output
    assert "refused the credentials" in output and "result_backend" in output, output
    assert WRONG not in output, output

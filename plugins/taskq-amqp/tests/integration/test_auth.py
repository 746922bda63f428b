"""A login RabbitMQ refuses (ACCESS_REFUSED) fails at once, at worker start and on a send.

Against the shared RabbitMQ with a wrong password for guest: a ConfigError within a
couple of seconds that names broker_url and never the password, where it was 20 s of
retries ending in "is it running?".
"""

from __future__ import annotations

import time
import uuid

import pytest

from taskq import App
from taskq.errors import ConfigError
from taskq.testing import run_worker

pytestmark = pytest.mark.integration

WRONG = "Wrong-Amqp-Pw-5Tz8-distinctive"
URL = f"amqp://guest:{WRONG}@127.0.0.1:5672//"
# Longest a refused login may take to be reported, in seconds (one connection attempt).
AT_ONCE = 3.0


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


def test_a_worker_with_a_refused_login_exits_at_once_and_says_why() -> None:
    run = run_worker({"broker_url": URL, "result_backend": "disabled"}, "-Q", f"auth-{uuid.uuid4().hex[:8]}")
    assert run.returncode != 0, run.output
    assert "refused the credentials" in run.output and "broker_url" in run.output, run.output
    assert WRONG not in run.output and "Traceback" not in run.output, run.output
    assert run.seconds < 10, f"the worker took {run.seconds:.1f}s to give up:\n{run.output}"

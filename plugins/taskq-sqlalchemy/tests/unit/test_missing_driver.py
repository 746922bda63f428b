"""A database driver that is not installed is one line naming what to install, not a traceback.

Each case runs in a subprocess whose ``sitecustomize`` blocks the driver's import
(``sys.modules[name] = None``, what Python does for a module that is not there), with
the real plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Seconds a subprocess may take (an interpreter start and an app).
RUN_TIMEOUT = 60.0
PASSWORD = "Pg-Secret-8Hd2-distinctive"


def run_blocked(tmp_path: Path, blocked: str, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{blocked!r}] = None\n", encoding="utf-8")
    (tmp_path / "dbapp.py").write_text(
        "from taskq import App\napp = App('dbapp')\n@app.task\ndef add(x, y):\n    return x + y\n", encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), **env_vars}
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )


@pytest.mark.parametrize(
    ("url", "blocked", "install"),
    [
        (f"db+postgresql://taskq:{PASSWORD}@127.0.0.1/test", "psycopg", "pip install 'taskq-sqlalchemy[postgresql]'"),
        (f"db+postgresql+psycopg2://taskq:{PASSWORD}@127.0.0.1/test", "psycopg2", "pip install psycopg2-binary"),
        (f"db+mysql://root:{PASSWORD}@127.0.0.1/test", "pymysql", "pip install 'taskq-sqlalchemy[mysql]'"),
    ],
)
def test_a_client_call_names_the_extra_to_install(tmp_path: Path, url: str, blocked: str, install: str) -> None:
    code = (
        "from taskq import App\n"
        "from taskq.errors import ConfigError\n"
        f"app = App('x', broker='memory://x', backend={url!r}, read_config=False)\n"
        "try:\n"
        "    app.AsyncResult('some-id').state\n"
        "except ConfigError as exc:\n"
        "    print('ConfigError:', exc)\n"
    )
    done = run_blocked(tmp_path, blocked, "-c", code)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output, output
    assert output.startswith("ConfigError:") and install in output and blocked in output, output
    assert PASSWORD not in output, output


def test_a_worker_prints_one_line_naming_the_extra(tmp_path: Path) -> None:
    url = f"db+postgresql://taskq:{PASSWORD}@127.0.0.1/test"
    done = run_blocked(
        tmp_path,
        "psycopg",
        "-m",
        "taskq",
        "-A",
        "dbapp",
        "worker",
        "-P",
        "solo",
        TASKQ_BROKER_URL="memory://missing-driver",
        TASKQ_RESULT_BACKEND=url,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("taskq: error:")]
    assert len(errors) == 1 and "pip install 'taskq-sqlalchemy[postgresql]'" in errors[0], output
    assert PASSWORD not in output, output

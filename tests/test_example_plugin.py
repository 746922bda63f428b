"""The example third-party plugin, installed from its folder into a fresh virtual environment.

Checks what a plugin author is promised: ``taskq plugins`` lists the plugin with its
distribution, version and drivers; its command joins the CLI; ``[plugins]`` in
``taskq.toml`` turns it off (``disable``) or lists the only third-party plugins to load
(``enable``); and its serializer carries a task through a real worker on the SQLite broker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "taskq-example-plugin"
DISTRIBUTIONS = [
    ROOT / "core",
    ROOT / "plugins" / "taskq-solo",
    ROOT / "plugins" / "taskq-sqlite",
    EXAMPLE,
]

# Seconds: building the environment (wheels are built from the folders), one command,
# waiting for a result, and letting a worker stop warm before it is killed.
INSTALL_TIMEOUT = 600
COMMAND_TIMEOUT = 60
RESULT_TIMEOUT = 30
WORKER_STOP_TIMEOUT = 15

QUEUE = "example-e2e"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(INSTALL_TIMEOUT + 120)]


def _install(venv: Path) -> Path:
    """Create ``venv`` with taskq, two plugins and the example plugin; return its bin folder."""
    bin_dir = venv / "bin"
    folders = [str(folder) for folder in DISTRIBUTIONS]
    uv = shutil.which("uv")
    if uv:
        commands = [
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(bin_dir / "python"), *folders],
        ]
    else:
        commands = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *folders],
        ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return bin_dir


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [str(f) for f in DISTRIBUTIONS if not (f / "pyproject.toml").is_file()]
    if missing:
        pytest.fail(f"cannot install these distributions, they have no pyproject.toml: {missing}")
    return _install(tmp_path_factory.mktemp("example-plugin") / "venv")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder, the working directory of every command a test runs."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def _env(cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_") and k != "VIRTUAL_ENV"}
    env["PYTHONPATH"] = str(cwd)
    return env


def _run(
    bin_dir: Path, *args: str, cwd: Path, check: bool = True, program: str = "taskq"
) -> subprocess.CompletedProcess[str]:
    command = [str(bin_dir / program), *args]
    done = subprocess.run(command, cwd=cwd, env=_env(cwd), capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    return done


def _plugin_block(output: str, name: str) -> str:
    """The lines ``taskq plugins`` prints about the plugin whose entry point is ``name``."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.split() and line.split()[0] == name:
            block = [line]
            for following in lines[index + 1 :]:
                if not following.strip() or not following[0].isspace():
                    break
                block.append(following)
            return "\n".join(block)
    raise AssertionError(f"taskq plugins does not list the plugin {name!r}:\n{output}")


def _write_config(project: Path, text: str) -> None:
    (project / "taskq.toml").write_text(textwrap.dedent(text), encoding="utf-8")


# ---- Listing and selecting ------------------------------------------------------------


def test_taskq_plugins_lists_the_example_plugin_with_its_drivers(venv_bin: Path, project: Path) -> None:
    output = _run(venv_bin, "plugins", cwd=project).stdout
    block = _plugin_block(output, "example")
    assert "taskq-example-plugin" in block
    assert "0.1.0" in block
    assert "jsonz" in block
    assert "example-hello" in block
    assert "disabled" not in block


def test_the_plugin_module_imports_no_driver(venv_bin: Path, project: Path) -> None:
    check = (
        "import sys, taskq_example_plugin.plugin\n"
        "loaded = [m for m in ('taskq_example_plugin.serializer', 'taskq_example_plugin.commands', 'click')"
        " if m in sys.modules]\n"
        "print(loaded)"
    )
    assert _run(venv_bin, "-c", check, cwd=project, program="python").stdout.strip() == "[]"


def test_the_plugin_command_runs(venv_bin: Path, project: Path) -> None:
    output = _run(venv_bin, "example-hello", "Ada", cwd=project).stdout
    assert "Hello, Ada!" in output
    assert "taskq-example-plugin 0.1.0" in output


def test_the_plugin_command_is_listed_in_help(venv_bin: Path, project: Path) -> None:
    assert "example-hello" in _run(venv_bin, "--help", cwd=project).stdout


def test_disabled_plugin_is_listed_as_disabled_and_its_command_is_gone(venv_bin: Path, project: Path) -> None:
    _write_config(project, '[plugins]\ndisable = ["example"]\n')
    block = _plugin_block(_run(venv_bin, "plugins", cwd=project).stdout, "example")
    assert "disabled" in block
    assert "jsonz" not in block
    done = _run(venv_bin, "example-hello", cwd=project, check=False)
    assert done.returncode != 0
    assert "example-hello" in done.stderr


def test_enable_lists_the_only_third_party_plugins_loaded(venv_bin: Path, project: Path) -> None:
    _write_config(project, '[plugins]\nenable = ["solo"]\n')
    output = _run(venv_bin, "plugins", cwd=project).stdout
    assert "disabled" in _plugin_block(output, "example")
    assert "disabled" in _plugin_block(output, "sqlite")
    assert "disabled" not in _plugin_block(output, "solo")
    # Core's built-ins load whatever enable says.
    for builtin in ("json", "pickle", "memory"):
        assert "disabled" not in _plugin_block(output, builtin)
    assert _run(venv_bin, "example-hello", cwd=project, check=False).returncode != 0


def test_enable_naming_the_plugin_loads_it(venv_bin: Path, project: Path) -> None:
    _write_config(project, '[plugins]\nenable = ["example"]\n')
    output = _run(venv_bin, "plugins", cwd=project).stdout
    assert "disabled" not in _plugin_block(output, "example")
    assert "disabled" in _plugin_block(output, "solo")
    assert "Hello" in _run(venv_bin, "example-hello", cwd=project).stdout


# ---- A task through a worker, serialized with jsonz ---------------------------------------

TASKS_MODULE = '''
"""Tasks for the end-to-end check of the jsonz serializer."""

from taskq import App

app = App("e2e_tasks")


@app.task
def add(x, y):
    return x + y


@app.task
def echo(value):
    return value
'''

# Sends one task before any worker runs, then claims it back to read the content type
# it travelled with, and returns it to the queue for the worker.
SEND_SCRIPT = f"""
from e2e_tasks import app, echo

result = echo.delay({{"text": "compress me " * 40, "numbers": list(range(30))}})
transport = app.new_transport()
deliveries = transport.claim([{QUEUE!r}], 1, lease=30)
assert len(deliveries) == 1, deliveries
print(result.id)
print(deliveries[0].message.content_type)
transport.requeue(deliveries)
transport.close()
"""


@pytest.fixture
def jsonz_project(project: Path) -> Path:
    (project / "e2e_tasks.py").write_text(TASKS_MODULE, encoding="utf-8")
    (project / "send.py").write_text(SEND_SCRIPT, encoding="utf-8")
    _write_config(
        project,
        f"""
        broker_url = "sqlite:///taskq.db"
        task_serializer = "jsonz"
        accept_content = ["json", "jsonz"]
        task_default_queue = "{QUEUE}"
        worker_pool = "solo"
        """,
    )
    return project


@contextlib.contextmanager
def _worker(bin_dir: Path, project: Path) -> Iterator[Path]:
    """Run ``taskq worker`` on the project's SQLite broker; yield its log file."""
    log = project / "worker.log"
    command = [str(bin_dir / "taskq"), "-A", "e2e_tasks", "worker", "-P", "solo", "-c", "1", "-Q", QUEUE]
    command += ["-l", "info"]
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(command, cwd=project, env=_env(project), stdout=out, stderr=subprocess.STDOUT)
    try:
        yield log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=WORKER_STOP_TIMEOUT)


def test_a_jsonz_task_runs_through_a_worker(venv_bin: Path, jsonz_project: Path) -> None:
    sent = _run(venv_bin, "send.py", cwd=jsonz_project, program="python").stdout.split()
    echo_id, content_type = sent
    assert content_type == "application/x-taskq-jsonz"

    with _worker(venv_bin, jsonz_project) as log:
        call = _run(venv_bin, "-A", "e2e_tasks", "call", "e2e_tasks.add", "--args", "[2, 3]", cwd=jsonz_project)
        add_id = call.stdout.strip().splitlines()[-1]
        timeout = str(RESULT_TIMEOUT)
        for task_id, expected in ((add_id, "5"), (echo_id, "compress me")):
            done = _run(
                venv_bin,
                "-A",
                "e2e_tasks",
                "result",
                task_id,
                "--timeout",
                timeout,
                cwd=jsonz_project,
                check=False,
            )
            assert done.returncode == 0 and expected in done.stdout, (
                f"taskq result {task_id} exited {done.returncode}\nstdout:\n{done.stdout}\n"
                f"stderr:\n{done.stderr}\nworker log:\n{log.read_text(encoding='utf-8')}"
            )

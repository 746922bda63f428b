"""The ``taskq`` entry point: worker command lines read without click, everything else by click."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from taskq.cli.main import WorkerCommand, main, parse_worker_command
from taskq.cli.worker import WORKER_OPTIONS, run_worker
from taskq.errors import EXIT_CONFIG

DEFAULTS: dict[str, object] = {
    option.name: None if option.default is None else option.convert(option.default) for option in WORKER_OPTIONS
}


def test_the_benchmark_worker_command_is_read_without_click() -> None:
    args = ["worker", "-A", "benchmarks.tasks_taskq", "--pool=solo", "-c", "1", "-l", "warning"]
    assert parse_worker_command(args, {}) == WorkerCommand(
        "benchmarks.tasks_taskq", None, DEFAULTS | {"pool": "solo", "concurrency": 1, "loglevel": "WARNING"}
    )


def test_every_worker_option_is_converted_as_click_converts_it(tmp_path: Path) -> None:
    config = str(tmp_path / "taskq.toml")
    args = [
        "--app=proj",
        "--config",
        config,
        "worker",
        "-Qa,b",
        "-X",
        "c",
        "--concurrency=4",
        "-P",
        "thread",
        "--loglevel",
        "Debug",
        "-n",
        "w1@host",
        "--prefetch-multiplier",
        "0",
        "--autoscale",
        "8,2",
        "-S",
        str(tmp_path / "state"),
        "--health-file",
        str(tmp_path / "health"),
        "--time-limit",
        "30",
        "--soft-time-limit=2.5",
        "--max-tasks-per-child",
        "100",
        "--max-memory-per-child",
        "200000",
        "-E",
        "-B",
        "-s",
        str(tmp_path / "beat.db"),
        "--scheduler=memory",
        "--without-mingle",
        "--without-gossip",
        "--config",
        config,
    ]
    assert parse_worker_command(args, {}) == WorkerCommand(
        "proj",
        config,
        {
            "queues": "a,b",
            "exclude_queues": "c",
            "concurrency": 4,
            "pool": "thread",
            "loglevel": "DEBUG",
            "hostname": "w1@host",
            "prefetch_multiplier": 0,
            "autoscale": "8,2",
            "statedb": str(tmp_path / "state"),
            "health_file": str(tmp_path / "health"),
            "time_limit": 30.0,
            "soft_time_limit": 2.5,
            "max_tasks_per_child": 100,
            "max_memory_per_child": 200000,
            "task_events": True,
            "beat": True,
            "schedule": str(tmp_path / "beat.db"),
            "scheduler": "memory",
            "without_mingle": True,
            "without_gossip": True,
            "worker_config": config,
        },
    )


def test_the_app_given_after_worker_wins_and_the_environment_fills_in() -> None:
    environ = {"TASKQ_APP": "from_env", "TASKQ_CONFIG": "env.toml"}
    assert parse_worker_command(["-A", "before", "worker", "-A", "after"], environ) == WorkerCommand(
        "after", "env.toml", DEFAULTS
    )
    assert parse_worker_command(["worker"], environ) == WorkerCommand("from_env", "env.toml", DEFAULTS)
    assert parse_worker_command(["worker"], {"TASKQ_APP": "", "TASKQ_CONFIG": ""}) == WorkerCommand(
        None, None, DEFAULTS
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["--version"],
        ["worker", "--help"],
        ["worker", "-h"],
        ["purge", "-f"],
        ["worker", "--no-such-option"],
        ["worker", "-c", "four"],
        ["worker", "-l", "loud"],
        ["worker", "--time-limit", "soon"],
        ["worker", "-c"],
        ["worker", "extra"],
        ["worker", "--", "-c", "1"],
        ["worker", "-Bc2"],
        ["--no-such-option", "worker"],
        ["-A", "proj", "purge", "worker"],
    ],
)
def test_a_command_line_that_is_not_surely_a_worker_goes_to_click(args: list[str]) -> None:
    assert parse_worker_command(args, {}) is None


def test_a_folder_given_as_a_file_goes_to_click(tmp_path: Path) -> None:
    assert parse_worker_command(["worker", "--statedb", str(tmp_path)], {}) is None
    assert parse_worker_command(["worker"], {"TASKQ_CONFIG": str(tmp_path)}) is None


def test_the_option_table_fills_exactly_the_parameters_of_run_worker_and_the_click_command() -> None:
    from taskq.cli.commands import worker

    parameters = set(inspect.signature(run_worker).parameters) - {"state"}
    assert {option.name for option in WORKER_OPTIONS} == parameters
    click_flags = {param.name: tuple(param.opts) for param in worker.params}
    assert click_flags == {option.name: option.flags for option in WORKER_OPTIONS} | {"app_spec": ("-A", "--app")}


def test_a_worker_that_cannot_start_says_why_and_exits_with_the_error_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-A", "no_such_module_for_taskq_tests", "worker", "--pool", "solo"])
    assert exit_info.value.code == EXIT_CONFIG
    assert "taskq: error: cannot import 'no_such_module_for_taskq_tests' given with -A" in capsys.readouterr().err


def test_the_entry_point_imports_click_only_for_the_click_commands() -> None:
    code = (
        "import sys, taskq.cli.main as m\n"
        "before = 'click' in sys.modules\n"
        "group = m.cli\n"
        "print(before, 'click' in sys.modules, group.name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "True", "cli"]

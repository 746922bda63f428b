"""Settings: where they come from, in which order, and how wrong names are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskq import App, ConfigError
from taskq.config import DEFAULTS, find_config_file, load_settings, read_config_file, read_environment


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory, made the working directory, with no TASKQ_* variables."""
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.startswith("TASKQ_"):
            monkeypatch.delenv(key)
    return tmp_path


# ---- Precedence ---------------------------------------------------------------------


def test_defaults_apply_when_nothing_else_is_given(project: Path) -> None:
    app = App("proj")
    assert app.conf["task_default_queue"] == DEFAULTS["task_default_queue"]
    assert app.conf.broker_url == "sqlite:///taskq.db"
    assert app.conf.source is None


def test_taskq_toml_overrides_defaults(project: Path) -> None:
    write(project / "taskq.toml", 'task_default_queue = "from-toml"\n')
    app = App("proj")
    assert app.conf["task_default_queue"] == "from-toml"
    assert app.conf.source == project / "taskq.toml"


def test_tool_taskq_table_of_pyproject_overrides_defaults(project: Path) -> None:
    write(
        project / "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.taskq]\ntask_default_queue = "from-pyproject"\n',
    )
    app = App("proj")
    assert app.conf["task_default_queue"] == "from-pyproject"
    assert app.conf.source == project / "pyproject.toml"


def test_pyproject_without_tool_taskq_is_not_a_config_file(project: Path) -> None:
    write(project / "pyproject.toml", '[project]\nname = "x"\n\n[tool.ruff]\nline-length = 100\n')
    assert find_config_file(project) is None


def test_taskq_toml_is_read_instead_of_pyproject_when_both_exist(project: Path) -> None:
    # DESIGN.md: "taskq.toml or [tool.taskq]": one file, the dedicated one first.
    write(project / "taskq.toml", 'task_default_queue = "from-toml"\n')
    write(
        project / "pyproject.toml",
        '[tool.taskq]\ntask_default_queue = "from-pyproject"\nresult_expires = 5\n',
    )
    app = App("proj")
    assert app.conf["task_default_queue"] == "from-toml"
    assert app.conf["result_expires"] == DEFAULTS["result_expires"]


def test_environment_overrides_the_config_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project / "taskq.toml", 'task_default_queue = "from-toml"\nresult_expires = 10.0\n')
    monkeypatch.setenv("TASKQ_TASK_DEFAULT_QUEUE", "from-env")
    app = App("proj")
    assert app.conf["task_default_queue"] == "from-env"
    assert app.conf["result_expires"] == 10.0


def test_keyword_arguments_override_the_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project / "taskq.toml", 'task_default_queue = "from-toml"\n')
    monkeypatch.setenv("TASKQ_TASK_DEFAULT_QUEUE", "from-env")
    app = App("proj", task_default_queue="from-kwargs")
    assert app.conf["task_default_queue"] == "from-kwargs"


def test_broker_and_backend_arguments_set_their_settings(project: Path) -> None:
    app = App("proj", broker="memory://a", backend="memory://b")
    assert app.conf["broker_url"] == "memory://a"
    assert app.conf["result_backend"] == "memory://b"


def test_read_config_false_skips_the_config_file(project: Path) -> None:
    write(project / "taskq.toml", 'task_default_queue = "from-toml"\n')
    app = App("proj", read_config=False)
    assert app.conf["task_default_queue"] == DEFAULTS["task_default_queue"]


def test_explicit_config_file_is_read_from_anywhere(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "settings.toml"
    write(elsewhere, 'task_default_queue = "explicit"\n')
    app = App("proj", config_file=elsewhere)
    assert app.conf["task_default_queue"] == "explicit"


def test_taskq_config_variable_names_the_config_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(project / "other.toml", 'task_default_queue = "via-env"\n')
    monkeypatch.setenv("TASKQ_CONFIG", str(path))
    assert App("proj").conf["task_default_queue"] == "via-env"


def test_missing_explicit_config_file_is_a_config_error(project: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=project / "nope.toml", environ={})


def test_invalid_toml_is_a_config_error_naming_the_file(project: Path) -> None:
    path = write(project / "taskq.toml", "task_default_queue = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(path)


def test_defaults_are_copied_so_one_app_cannot_change_another(project: Path) -> None:
    first = App("one", read_config=False)
    second = App("two", read_config=False)
    routes = first.conf["task_routes"]
    assert isinstance(routes, dict)
    routes["x"] = "y"
    assert second.conf["task_routes"] == {}
    assert DEFAULTS["task_routes"] == {}


# ---- Environment parsing --------------------------------------------------------------


def test_environment_booleans_accept_the_usual_spellings() -> None:
    for raw in ("1", "true", "Yes", "ON"):
        assert read_environment({"TASKQ_TASK_ACKS_LATE": raw}) == {"task_acks_late": True}
    for raw in ("0", "false", "No", "off", ""):
        assert read_environment({"TASKQ_TASK_ACKS_LATE": raw}) == {"task_acks_late": False}


def test_environment_boolean_that_is_not_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TASKQ_TASK_ACKS_LATE='maybe' is not a boolean"):
        read_environment({"TASKQ_TASK_ACKS_LATE": "maybe"})


def test_environment_integers_become_ints() -> None:
    assert read_environment({"TASKQ_WORKER_PREFETCH_MULTIPLIER": "8"}) == {"worker_prefetch_multiplier": 8}


def test_environment_integer_settings_without_a_default_become_ints() -> None:
    values = read_environment({"TASKQ_WORKER_CONCURRENCY": "4", "TASKQ_TASK_DEFAULT_PRIORITY": "5"})
    assert values == {"worker_concurrency": 4, "task_default_priority": 5}


def test_environment_time_limits_become_numbers() -> None:
    assert read_environment({"TASKQ_TASK_TIME_LIMIT": "30"}) == {"task_time_limit": 30}
    assert read_environment({"TASKQ_TASK_SOFT_TIME_LIMIT": "2.5"}) == {"task_soft_time_limit": 2.5}


def test_environment_rate_limit_stays_text() -> None:
    assert read_environment({"TASKQ_TASK_DEFAULT_RATE_LIMIT": "10/m"}) == {"task_default_rate_limit": "10/m"}


def test_environment_floats_become_floats() -> None:
    assert read_environment({"TASKQ_RESULT_EXPIRES": "12.5"}) == {"result_expires": 12.5}


def test_environment_number_that_is_not_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is not a number"):
        read_environment({"TASKQ_RESULT_EXPIRES": "soon"})


def test_environment_lists_are_comma_separated() -> None:
    assert read_environment({"TASKQ_ACCEPT_CONTENT": "json, pickle,,"}) == {"accept_content": ["json", "pickle"]}


def test_environment_list_settings_without_a_default_are_comma_separated() -> None:
    values = read_environment({"TASKQ_RESULT_ACCEPT_CONTENT": "json,pickle"})
    assert values == {"result_accept_content": ["json", "pickle"]}


def test_environment_tables_are_json_objects() -> None:
    values = read_environment({"TASKQ_TASK_ROUTES": '{"proj.add": {"queue": "math"}}'})
    assert values == {"task_routes": {"proj.add": {"queue": "math"}}}


def test_environment_table_that_is_not_a_json_object_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TASKQ_TASK_ROUTES must be a JSON object"):
        read_environment({"TASKQ_TASK_ROUTES": "[1, 2]"})
    with pytest.raises(ConfigError, match="TASKQ_TASK_ROUTES must be a JSON object"):
        read_environment({"TASKQ_TASK_ROUTES": "{not json"})


def test_environment_strings_stay_strings() -> None:
    assert read_environment({"TASKQ_BROKER_URL": "redis://x"}) == {"broker_url": "redis://x"}


def test_reserved_and_unrelated_variables_are_not_settings() -> None:
    assert read_environment({"TASKQ_APP": "proj", "TASKQ_CONFIG": "x.toml", "PATH": "/bin"}) == {}


# ---- Unknown names ----------------------------------------------------------------------


def test_unknown_setting_in_config_file_suggests_nearest_name(project: Path) -> None:
    write(project / "taskq.toml", 'broker_ur = "memory://"\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'broker_ur' in .*taskq.toml; did you mean 'broker_url'\?"):
        App("proj")


def test_unknown_setting_in_pyproject_suggests_nearest_name(project: Path) -> None:
    write(project / "pyproject.toml", '[tool.taskq]\nresult_backnd = "memory://"\n')
    with pytest.raises(ConfigError, match="did you mean 'result_backend'"):
        App("proj")


def test_unknown_setting_in_environment_suggests_nearest_variable(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKQ_BROKER_UR", "memory://")
    with pytest.raises(ConfigError, match=r"TASKQ_BROKER_UR; did you mean TASKQ_BROKER_URL\?$"):
        App("proj")


def test_unknown_setting_in_arguments_suggests_nearest_name(project: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown setting 'broker_ur' in App\(\.\.\.\) arguments; did you mean 'broker_url'\?",
    ):
        App("proj", broker_ur="memory://")


def test_unknown_setting_far_from_any_name_has_no_suggestion(project: Path) -> None:
    with pytest.raises(ConfigError) as info:
        App("proj", zzzzzz=1)
    assert "did you mean" not in str(info.value)


def test_config_from_object_checks_names(project: Path) -> None:
    app = App("proj", read_config=False)
    with pytest.raises(ConfigError, match="did you mean 'task_acks_late'"):
        app.config_from_object({"task_ack_late": True})


def test_unknown_setting_attribute_suggests_nearest_name(project: Path) -> None:
    app = App("proj", read_config=False)
    with pytest.raises(AttributeError, match="did you mean 'broker_url'"):
        _ = app.conf.broker_ur


# ---- [plugins] -------------------------------------------------------------------------


def test_plugins_table_selects_plugins(project: Path) -> None:
    write(project / "taskq.toml", '[plugins]\nenable = ["redis"]\ndisable = ["pickle"]\n')
    conf = App("proj").conf
    assert conf.plugin_enable == ["redis"]
    assert conf.plugin_disable == ["pickle"]


def test_plugins_without_enable_loads_every_installed_plugin(project: Path) -> None:
    conf = App("proj").conf
    assert conf.plugin_enable is None
    assert conf.plugin_disable == []


def test_unknown_key_in_plugins_table_suggests_nearest(project: Path) -> None:
    write(project / "taskq.toml", '[plugins]\ndisabled = ["pickle"]\n')
    with pytest.raises(ConfigError, match=r"unknown key 'disabled' in \[plugins\].*did you mean 'disable'\?"):
        App("proj")


def test_plugins_list_that_is_not_a_list_of_names_is_a_config_error(project: Path) -> None:
    write(project / "taskq.toml", '[plugins]\ndisable = "pickle"\n')
    with pytest.raises(ConfigError, match=r"\[plugins\] disable .* must be a list of plugin names"):
        App("proj")


def test_plugins_that_is_not_a_table_is_a_config_error(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"'plugins' in App\(\.\.\.\) arguments must be a table"):
        load_settings({"plugins": ["pickle"]}, environ={}, read_files=False)


def test_plugins_table_from_the_environment_is_checked(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_PLUGINS", '{"enabel": ["redis"]}')
    with pytest.raises(ConfigError, match="did you mean 'enable'"):
        App("proj")

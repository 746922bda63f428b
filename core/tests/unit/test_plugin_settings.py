"""Settings a plugin declares: known by name, defaulted, read from files and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskq import App, config
from taskq.errors import ConfigError


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_registered_defaults", {})
    config.register_settings({"acme_level": 3, "acme_loud": False, "acme_name": None}, owner="acme")


def test_a_declared_setting_has_its_default() -> None:
    conf = App("tests", read_config=False).conf
    assert conf["acme_level"] == 3
    assert conf.acme_name is None
    assert conf.get("acme_loud") is False


def test_a_declared_setting_is_read_from_a_config_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "taskq.toml"
    config_file.write_text('acme_name = "from the file"\n')
    monkeypatch.setenv("TASKQ_ACME_LEVEL", "7")
    monkeypatch.setenv("TASKQ_ACME_LOUD", "yes")
    conf = App("tests", config_file=config_file).conf
    assert (conf["acme_name"], conf["acme_level"], conf["acme_loud"]) == ("from the file", 7, True)


def test_a_misspelt_declared_setting_suggests_it() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'acme_levle' in App.* did you mean 'acme_level'"):
        App("tests", read_config=False, acme_levle=1)


def test_a_plugin_may_not_redeclare_a_core_setting() -> None:
    with pytest.raises(ConfigError, match="acme2 declares settings core already has: broker_url"):
        config.register_settings({"broker_url": "x://"}, owner="acme2")


def test_an_unknown_name_is_still_unknown() -> None:
    conf = App("tests", read_config=False).conf
    with pytest.raises(KeyError):
        conf["no_such_setting"]
    with pytest.raises(AttributeError, match="unknown setting 'acme_nam'; did you mean 'acme_name'"):
        conf.acme_nam  # noqa: B018 - the attribute access is what is tested

"""The state the ``taskq`` command's subcommands share, click or not (see :mod:`taskq.cli.main`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.config import Settings
    from taskq.plugins import Plugins


class CLIState:
    """What the top-level options chose; the app and plugins load only when needed."""

    def __init__(self, app_spec: str | None, config: str | None) -> None:
        self.app_spec = app_spec
        self.config = config
        if config:
            # App() in the user's module reads this, so -A apps see the same file.
            os.environ["TASKQ_CONFIG"] = config
        self._app: App | None = None
        self._settings: Settings | None = None
        self._plugins: Plugins | None = None

    @property
    def settings(self) -> Settings:
        """Settings from the config file and environment, before any app is imported."""
        if self._settings is None:
            from taskq.config import load_settings

            self._settings = load_settings(config_file=self.config)
        return self._settings

    @property
    def plugins(self) -> Plugins:
        """Plugins chosen by the config file (used before the app is imported)."""
        if self._plugins is None:
            if self._app is not None:
                self._plugins = self._app.plugins
            else:
                from taskq.plugins import load_plugins

                self._plugins = load_plugins(self.settings.plugin_enable, self.settings.plugin_disable)
        return self._plugins

    @property
    def app(self) -> App:
        """The app ``-A`` names (or one made from the config file), loaded on first use;
        then ``taskq_cli_app_loaded`` is told the top-level options."""
        if self._app is None:
            if self.app_spec:
                from taskq.cli.loader import find_app

                app = find_app(self.app_spec)
            else:
                from taskq.app import App

                app = App(config_file=self.config)
            self._app = app
            plugins = app.plugins
            if plugins.has_impl("taskq_cli_app_loaded"):
                plugins.cli_app_loaded(app, {"app": self.app_spec, "config": self.config})
        return self._app


__all__ = ["CLIState"]

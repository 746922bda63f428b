"""Test set-up for taskq-eventlet."""

from __future__ import annotations

import pytest

#: eventlet warns on import that it is deprecated (it is in maintenance mode upstream);
#: the warning says nothing about this plugin, so its tests do not show it.
EVENTLET_DEPRECATION = r"ignore:\s*Eventlet is deprecated:Warning"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", EVENTLET_DEPRECATION)

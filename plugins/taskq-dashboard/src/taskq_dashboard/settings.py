"""The settings taskq-dashboard declares (entry point ``taskq.settings``), with their defaults.

Each is also an option of ``taskq dashboard`` (the option wins); as settings they can sit
in ``taskq.toml`` or the environment (``TASKQ_DASHBOARD_TOKEN``). Importing this module
imports nothing else.
"""

from __future__ import annotations

DEFAULTS: dict[str, object] = {
    # The token that opens the dashboard (a bearer header, or the login form); None: no token.
    "dashboard_token": None,
    # "USER:PASSWORD" for basic auth; None: no basic auth.
    "dashboard_basic_auth": None,
    # The SQLite file keeping the task history across restarts.
    "dashboard_db": "taskq-dashboard.db",
    # Most tasks kept in that history; the oldest go first.
    "dashboard_max_tasks": 100_000,
}

__all__ = ["DEFAULTS"]

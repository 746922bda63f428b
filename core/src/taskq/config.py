"""Settings: Celery's names, read from defaults < config file < environment < arguments.

The config file is ``taskq.toml`` (top-level keys) or the ``[tool.taskq]`` table of
``pyproject.toml``, found in the working directory unless a path is given. Its
``[plugins]`` table selects plugins (``enable``, ``disable``). Environment variables
are the upper-case names with a ``TASKQ_`` prefix (``TASKQ_BROKER_URL``); values are
parsed to the setting's type (lists are comma-separated or JSON, tables are JSON).

An unknown name anywhere is an error that suggests the nearest valid one.

Plugins declare settings of their own through the entry-point group ``taskq.settings``:
each entry point names a mapping of setting names to defaults
(``security = "taskq_security.settings:DEFAULTS"``). They are read once per process, and
only when a name is not one of core's (:func:`plugin_settings`), so a configuration that
uses none costs nothing; code can declare more with :func:`register_settings`.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from taskq.errors import ConfigError

ENV_PREFIX = "TASKQ_"
CONFIG_FILE_NAME = "taskq.toml"
#: Environment variables read by the CLI, not settings.
RESERVED_ENV = frozenset({"TASKQ_APP", "TASKQ_CONFIG"})

DEFAULTS: dict[str, object] = {
    # broker and results
    "broker_url": "sqlite:///taskq.db",
    "broker_transport_options": {},
    "broker_connection_timeout": 4.0,
    "result_backend": None,  # None: the broker's store when it has a backend; "disabled": none
    "result_backend_transport_options": {},
    "result_serializer": "json",
    "result_accept_content": None,  # None: same as accept_content
    "result_expires": 86400.0,  # seconds; 0 or None keeps results until forgotten
    "result_extended": False,
    "result_compression": None,  # "zlib", "gzip", "bzip2" or "lzma"
    "result_max_size": None,  # bytes of one encoded result record; None: no limit
    "result_exception_modules": [],  # modules a client may import to rebuild a failed task's exception
    # serialization
    "task_serializer": "json",
    "accept_content": ["json"],
    # routing
    "task_default_queue": "taskq",
    "task_routes": {},
    "task_queues": None,  # None: task_default_queue alone; else Queue objects, names or tables
    "task_default_exchange": None,  # None: each queue has a direct exchange of its own name
    "task_default_exchange_type": "direct",
    "task_default_routing_key": None,  # None: task_default_queue
    "task_create_missing_queues": True,  # a queue named but not in task_queues is made on the fly
    "task_drop_unroutable": False,  # a send that reaches no queue is dropped (AMQP's way) instead of refused
    "worker_direct": False,  # each worker also consumes its own queue <hostname>.dq2
    "task_default_priority": None,
    "task_queue_max_priority": None,
    # task behaviour
    "task_acks_late": False,
    "task_acks_on_failure_or_timeout": True,
    "task_reject_on_worker_lost": False,
    "task_ignore_result": False,
    "task_store_errors_even_if_ignored": False,
    "task_track_started": False,
    "task_time_limit": None,  # seconds
    "task_soft_time_limit": None,  # seconds
    "task_default_retry_delay": 180.0,  # seconds
    "task_max_retries": 3,
    "task_default_rate_limit": None,
    "task_always_eager": False,
    "task_eager_propagates": False,
    "task_max_deliveries": 10,  # handed out this often without an ack: dead-lettered
    "task_annotations": {},
    # worker
    "worker_concurrency": None,  # None: the number of CPUs
    "worker_pool": None,  # None: prefork if installed, else the only pool installed
    "worker_prefetch_multiplier": 4,
    "worker_lease_seconds": 30.0,  # a claimed message returns this long after its worker died
    "worker_eta_horizon": 60.0,  # seconds: ETAs further away wait in the broker
    "worker_shutdown_grace": 600.0,  # seconds a warm shutdown waits for running tasks
    "worker_hijack_root_logger": True,
    "worker_log_format": "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
    "worker_state_db": None,
    "worker_health_file": None,  # touched every 2 s while the worker consumes
    "worker_max_tasks_per_child": None,
    "worker_max_memory_per_child": None,  # KiB of resident memory
    "worker_send_task_events": False,  # task events (-E); worker events are sent where the broker can
    "task_send_sent_event": False,  # a client sends task-sent for each task it sends
    # remote control
    "worker_enable_remote_control": True,  # the worker answers inspect and control requests
    "control_exchange": "celery",  # the mailbox's namespace: Celery's, so both reach each other
    "worker_mingle": True,  # a starting worker learns its peers' revoked ids (--without-mingle)
    "worker_gossip": True,  # a worker follows its peers' worker events (--without-gossip)
    # app
    "imports": [],
    "include": [],
    "timezone": "UTC",
    "enable_utc": True,
    # beat
    "beat_schedule": {},
    "beat_scheduler": "file",  # "file" (a local SQLite file), "memory", or a plugin's
    "beat_schedule_filename": "taskq-beat.db",
    "beat_scheduler_url": None,  # where a store-backed scheduler keeps its state; None: the broker's
    "beat_max_loop_interval": 300.0,  # seconds: the longest beat sleeps between checks
    "plugins": {},
}

PLUGIN_KEYS = frozenset({"enable", "disable"})
#: The entry-point group through which a plugin declares its settings: a mapping of names to defaults.
SETTINGS_ENTRY_POINT_GROUP = "taskq.settings"

# Settings declared by plugins (name -> default), read from the entry points when first needed.
_plugin_defaults: dict[str, object] | None = None
# Settings declared in code by register_settings, kept apart so a re-read keeps them.
_registered_defaults: dict[str, object] = {}

#: Types of the settings whose default is None, for reading them from the environment.
OPTIONAL_TYPES: dict[str, type] = {
    "result_accept_content": list,
    "result_compression": str,
    "result_max_size": int,
    "task_default_priority": int,
    "task_queues": list,
    "task_default_exchange": str,
    "task_default_routing_key": str,
    "task_queue_max_priority": int,
    "task_time_limit": float,
    "task_soft_time_limit": float,
    "worker_concurrency": int,
    "worker_max_tasks_per_child": int,
    "worker_max_memory_per_child": int,
}


def suggest(name: str, choices: Mapping[str, object] | frozenset[str] | list[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest valid name, or an empty string."""
    import difflib  # only on a mistake: kept off every start-up

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def plugin_settings() -> dict[str, object]:
    """The settings installed plugins declare, by name, with their defaults.

    Read once per process from the ``taskq.settings`` entry points (importing only the
    modules they name), plus those given to :func:`register_settings`.

    Raises:
        ConfigError: an entry point fails to load, is not a mapping, or redeclares a setting.
    """
    global _plugin_defaults
    if _plugin_defaults is None:
        from taskq import _entry_points  # only when a name is not core's: kept off every start-up

        found: dict[str, object] = {}
        for entry_point in _entry_points.entry_points(SETTINGS_ENTRY_POINT_GROUP):
            try:
                declared = entry_point.load()
            except Exception as exc:
                raise ConfigError(
                    f"the settings of plugin {entry_point.name!r} ({entry_point.value}) fail to load: "
                    f"{type(exc).__name__}: {exc}. Reinstall the plugin, or disable it."
                ) from exc
            owner = f"plugin {entry_point.name!r} ({entry_point.value})"
            settings = _declared(declared, owner)
            clash = sorted(name for name in settings if name in found)
            if clash:
                raise ConfigError(
                    f"{owner} declares settings another installed plugin declares too: {', '.join(clash)}; "
                    f"uninstall or rename one"
                )
            found.update(settings)
        _plugin_defaults = found
    if _registered_defaults:
        return {**_plugin_defaults, **_registered_defaults}
    return _plugin_defaults


def register_settings(defaults: Mapping[str, object], *, owner: str = "code") -> None:
    """Declare settings (names and defaults) from code, as a plugin's entry point does."""
    _registered_defaults.update(_declared(defaults, owner))


def _declared(declared: object, owner: str) -> dict[str, object]:
    if not isinstance(declared, Mapping) or not all(isinstance(name, str) for name in declared):
        raise ConfigError(f"the settings declared by {owner} are not a mapping of names to defaults")
    clash = sorted(set(declared) & set(DEFAULTS))
    if clash:
        raise ConfigError(f"{owner} declares settings core already has: {', '.join(clash)}; rename them")
    return dict(declared)


def is_setting(name: str) -> bool:
    """Whether ``name`` is a setting of core or of an installed plugin."""
    return name in DEFAULTS or name in plugin_settings()


def default_of(name: str) -> object:
    """The default of the setting ``name`` (core's or a plugin's); KeyError if there is none."""
    if name in DEFAULTS:
        return DEFAULTS[name]
    return plugin_settings()[name]


def _check_names(values: Mapping[str, object], where: str) -> None:
    for name in values:
        if not is_setting(name):
            raise ConfigError(f"unknown setting {name!r} in {where}{suggest(name, _all_names())}")
    plugins = values.get("plugins")
    if plugins is not None:
        if not isinstance(plugins, Mapping):
            raise ConfigError(f"'plugins' in {where} must be a table with 'enable' and/or 'disable'")
        for key, value in plugins.items():
            if key not in PLUGIN_KEYS:
                raise ConfigError(f"unknown key {key!r} in [plugins] of {where}{suggest(key, PLUGIN_KEYS)}")
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"[plugins] {key} in {where} must be a list of plugin names")


def _parse_env(name: str, raw: str) -> object:
    default = default_of(name)
    if default is None and name in OPTIONAL_TYPES:
        default = OPTIONAL_TYPES[name]()
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a boolean; use true or false")
    if isinstance(default, int):
        try:
            return int(raw) if raw.strip().lstrip("-").isdigit() else float(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a number") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a number") from None
    if isinstance(default, list):
        if raw.lstrip().startswith("["):  # a JSON list, for lists of tables (task_queues)
            return _json_env(name, raw, list, "a JSON list")
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(default, dict):
        return _json_env(name, raw, dict, "a JSON object")
    return raw


def _json_env(name: str, raw: str, kind: type, what: str) -> object:
    """The JSON value of the environment variable of setting ``name``, which must be ``what``."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be {what}: {exc}") from exc
    if not isinstance(value, kind):
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be {what}")
    return value


def find_config_file(directory: Path | None = None) -> Path | None:
    """``taskq.toml``, else a ``pyproject.toml`` with ``[tool.taskq]``, in ``directory``."""
    folder = directory or Path.cwd()
    candidate = folder / CONFIG_FILE_NAME
    if candidate.is_file():
        return candidate
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        import tomllib  # only when there is a file to read: kept off every start-up

        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return None
        if "taskq" in data.get("tool", {}):
            return pyproject
    return None


def read_config_file(path: Path) -> dict[str, object]:
    """The settings in a config file, checked for unknown names."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("taskq", {})
    _check_names(data, str(path))
    return data


def read_environment(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key in RESERVED_ENV:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if not is_setting(name):
            import difflib

            close = difflib.get_close_matches(name, list(_all_names()), n=1, cutoff=0.6)
            hint = f"; did you mean {ENV_PREFIX}{close[0].upper()}?" if close else ""
            raise ConfigError(f"unknown setting in the environment: {key}{hint}")
        values[name] = _parse_env(name, raw)
    _check_names(values, "the environment")
    return values


class Settings(Mapping[str, object]):
    """The merged settings; read with ``settings.broker_url`` or ``settings["broker_url"]``."""

    def __init__(self, values: Mapping[str, object], source: Path | None = None) -> None:
        self._values = dict(values)
        #: The config file the settings came from, if any.
        self.source = source

    def __getitem__(self, name: str) -> object:
        try:
            return self._values[name]
        except KeyError:
            if name in DEFAULTS:
                raise
            # A plugin's setting left at its default: read when first asked for.
            value = copy.copy(plugin_settings()[name])
            self._values[name] = value
            return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"unknown setting {name!r}{suggest(name, _all_names())}") from None

    def update(self, **values: object) -> None:
        """Change settings at run time (before the app is first used)."""
        _check_names(values, "App settings")
        self._values.update(values)

    @property
    def plugin_enable(self) -> list[str] | None:
        plugins = self._values.get("plugins") or {}
        assert isinstance(plugins, Mapping)
        enable = plugins.get("enable")
        return None if enable is None else list(enable)

    @property
    def plugin_disable(self) -> list[str]:
        plugins = self._values.get("plugins") or {}
        assert isinstance(plugins, Mapping)
        return list(plugins.get("disable") or [])


def _all_names() -> dict[str, object]:
    return {**DEFAULTS, **plugin_settings()}


def load_settings(
    overrides: Mapping[str, object] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    search_dir: Path | None = None,
    read_files: bool = True,
) -> Settings:
    """Merge defaults < config file < environment < ``overrides``."""
    env = os.environ if environ is None else environ
    values = {key: copy.copy(value) for key, value in DEFAULTS.items()}
    source: Path | None = None
    path_text = config_file or env.get("TASKQ_CONFIG")
    if path_text:
        source = Path(path_text)
    elif read_files:
        source = find_config_file(search_dir)
    if source is not None:
        values.update(read_config_file(source))
    values.update(read_environment(env))
    if overrides:
        _check_names(overrides, "App(...) arguments")
        values.update(overrides)
    return Settings(values, source)


__all__ = [
    "DEFAULTS",
    "SETTINGS_ENTRY_POINT_GROUP",
    "Settings",
    "default_of",
    "find_config_file",
    "is_setting",
    "load_settings",
    "plugin_settings",
    "read_config_file",
    "register_settings",
]

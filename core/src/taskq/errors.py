"""Every exception a taskq user can meet, under :class:`TaskqError`.

Messages say what went wrong, what was found, and what to do about it. Control-flow
signals (:class:`Retry`, :class:`Reject`, :class:`Ignore`) are not errors and do not end
in ``Error``.
"""

from __future__ import annotations

import builtins

# CLI exit codes, named so scripts and supervisors can act on them.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


class TaskqError(Exception):
    """Base class of every error taskq raises on purpose."""

    exit_code = EXIT_FAILURE


class ConfigError(TaskqError):
    """A setting, config file or command-line option is wrong."""

    exit_code = EXIT_CONFIG


class RoutingError(ConfigError):
    """A task was sent where no queue is: its exchange and routing key reach none, or its queue is not declared."""


class PluginError(TaskqError):
    """A plugin failed to load, or two plugins conflict."""

    exit_code = EXIT_CONFIG


class DriverNotFoundError(PluginError):
    """No installed plugin offers the requested driver (pool, transport, backend...)."""


class AppNotFoundError(ConfigError):
    """The ``-A module[:attr]`` given does not lead to a taskq App."""


class ScheduleLockedError(ConfigError):
    """Another beat holds the schedule store that this beat was asked to use."""


class BrokerUnavailableError(TaskqError):
    """The broker cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class BackendUnavailableError(TaskqError):
    """The result backend cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class SerializationError(TaskqError):
    """A value could not be serialized, or the serializer is unknown."""


class ContentDisallowedError(SerializationError):
    """A message used a content type that ``accept_content`` does not allow."""


class MessageDecodeError(TaskqError):
    """A message body or its headers could not be decoded."""


class NotRegisteredError(TaskqError, KeyError):
    """A message names a task the worker does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TimeoutError(TaskqError, builtins.TimeoutError):  # noqa: A001 - mirrors the builtin on purpose
    """Waiting for a result took longer than the timeout given."""


class ResultNotEnabledError(TaskqError):
    """A result was asked for, but no result backend is configured."""


class MaxRetriesExceededError(TaskqError):
    """A task asked to retry after its last allowed retry."""


class TaskRevokedError(TaskqError):
    """The task was revoked or expired before it ran."""


class WorkerLostError(TaskqError):
    """The process running a task died before the task finished."""


class ChordError(TaskqError):
    """A chord's body did not run because a task of its header failed."""


class PoolFeatureError(TaskqError):
    """The chosen pool cannot do what was asked (stop a task, resize, enforce a limit)."""

    exit_code = EXIT_CONFIG


class TimeLimitExceeded(TaskqError):  # noqa: N818 - Celery's name, which users catch
    """The task ran past its hard time limit and was stopped."""


class SoftTimeLimitExceeded(TaskqError):  # noqa: N818 - Celery's name, which users catch
    """Raised inside a task that ran past its soft time limit; it may catch it to clean up."""


class Terminated(TaskqError):  # noqa: N818 - Celery's name
    """The task was stopped while running (revoked with terminate=True)."""


class TaskError(TaskqError):
    """A task failed and its exception type could not be rebuilt on this side."""

    def __init__(self, exc_type: str, exc_module: str, message: str) -> None:
        super().__init__(f"{exc_module}.{exc_type}: {message}" if exc_module else message)
        self.exc_type = exc_type
        self.exc_module = exc_module
        self.message = message


# ---- Control-flow signals raised inside tasks -----------------------------------


class Retry(TaskqError):  # noqa: N818 - a signal, named as Celery names it
    """Raised by ``Task.retry``: the task is being retried; the worker records RETRY."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | None = None,
    ) -> None:
        self.exc = exc
        self.when = when
        super().__init__(message or (f"Retry in {when}s" if when is not None else "Retry"))


class Reject(TaskqError):  # noqa: N818 - a signal, named as Celery names it
    """Raised in a task to reject its message (dead-lettered, or requeued if asked)."""

    def __init__(self, reason: object = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(f"rejected: {reason}" if reason else "rejected")


class Ignore(TaskqError):  # noqa: N818 - a signal, named as Celery names it
    """Raised in a task to tell the worker not to record a state for it."""


__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "AppNotFoundError",
    "BackendUnavailableError",
    "BrokerUnavailableError",
    "ChordError",
    "ConfigError",
    "ContentDisallowedError",
    "DriverNotFoundError",
    "Ignore",
    "MaxRetriesExceededError",
    "MessageDecodeError",
    "NotRegisteredError",
    "PluginError",
    "PoolFeatureError",
    "Reject",
    "ResultNotEnabledError",
    "Retry",
    "RoutingError",
    "SerializationError",
    "SoftTimeLimitExceeded",
    "TaskError",
    "TaskRevokedError",
    "TaskqError",
    "Terminated",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
]

"""The driver API: everything a plugin author subclasses or calls, in one room.

A plugin offers drivers through the hooks of :mod:`taskq.hookspecs`; each driver
subclasses one base class here:

==================  =====================================  ===============================
kind                base class                             module
==================  =====================================  ===============================
broker transport    :class:`Transport`                     :mod:`taskq.drivers.transport`
result backend      :class:`ResultBackend`,                :mod:`taskq.drivers.backend`
                    :class:`KeyValueBackend`
concurrency pool    :class:`Pool`                          :mod:`taskq.drivers.pool`
beat scheduler      :class:`Scheduler`,                    :mod:`taskq.drivers.scheduler`
                    :class:`LeasedScheduler`
serializer          :class:`Serializer`                    :mod:`taskq.drivers.serializer`
worker bootstep     :class:`Step`                          :mod:`taskq.drivers.bootstep`
control command     :class:`Command` (:func:`command`)     :mod:`taskq.worker.commands`
CLI command         a click command (``app_option``,       :mod:`taskq.drivers.cli`
                    ``command_app``)
==================  =====================================  ===============================

Event hooks hand plugins two more objects, listed here as part of the contract:
:class:`Request` (a task the worker holds: ``id``, ``name``, ``args``, ``kwargs``,
``retries``, ``delivery``, ``message``) and :class:`Worker` (``hostname``, ``app``,
``pool``, ``queues``). What several drivers share (the message envelope, wake-ups
between processes, result waiters, retrying, cloud-service errors, the green thread
pool, interrupting a thread, masking URLs) is in :mod:`taskq.drivers.support`. The
conformance kit that checks a driver against its contract is
:mod:`taskq.testing.conformance`.

Names are imported on first use, so ``from taskq.drivers.pool import Pool`` loads the
pool contract and nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.drivers.backend import (
        BackendCapabilities,
        ChordPart,
        KeyValueBackend,
        Meta,
        ResultBackend,
        exception_to_meta,
        meta_to_exception,
    )
    from taskq.drivers.bootstep import Step
    from taskq.drivers.pool import Job, Pool, PoolCapabilities
    from taskq.drivers.scheduler import EntryState, LeasedScheduler, ScheduleEntry, Scheduler
    from taskq.drivers.serializer import JSON, Serializer
    from taskq.drivers.transport import (
        DEFAULT_LEASE_SECONDS,
        Capabilities,
        DeadLetter,
        Delivery,
        Letter,
        Mailbox,
        MailboxReader,
        Message,
        Transport,
    )
    from taskq.worker.commands import CONTROL, INSPECT, Command, CommandError, ControlState, command
    from taskq.worker.request import Request
    from taskq.worker.worker import Worker

#: Every public name and the module that defines it.
_EXPORTS = {
    "BackendCapabilities": "taskq.drivers.backend",
    "Capabilities": "taskq.drivers.transport",
    "CONTROL": "taskq.worker.commands",
    "ChordPart": "taskq.drivers.backend",
    "INSPECT": "taskq.worker.commands",
    "Command": "taskq.worker.commands",
    "CommandError": "taskq.worker.commands",
    "ControlState": "taskq.worker.commands",
    "Letter": "taskq.drivers.transport",
    "Mailbox": "taskq.drivers.transport",
    "MailboxReader": "taskq.drivers.transport",
    "command": "taskq.worker.commands",
    "DEFAULT_LEASE_SECONDS": "taskq.drivers.transport",
    "DeadLetter": "taskq.drivers.transport",
    "Delivery": "taskq.drivers.transport",
    "EntryState": "taskq.drivers.scheduler",
    "JSON": "taskq.drivers.serializer",
    "Job": "taskq.drivers.pool",
    "KeyValueBackend": "taskq.drivers.backend",
    "LeasedScheduler": "taskq.drivers.scheduler",
    "Message": "taskq.drivers.transport",
    "Meta": "taskq.drivers.backend",
    "Pool": "taskq.drivers.pool",
    "Request": "taskq.worker.request",
    "PoolCapabilities": "taskq.drivers.pool",
    "ResultBackend": "taskq.drivers.backend",
    "ScheduleEntry": "taskq.drivers.scheduler",
    "Scheduler": "taskq.drivers.scheduler",
    "Serializer": "taskq.drivers.serializer",
    "Step": "taskq.drivers.bootstep",
    "Transport": "taskq.drivers.transport",
    "Worker": "taskq.worker.worker",
    "exception_to_meta": "taskq.drivers.backend",
    "meta_to_exception": "taskq.drivers.backend",
}

__all__ = [
    "CONTROL",
    "DEFAULT_LEASE_SECONDS",
    "INSPECT",
    "JSON",
    "BackendCapabilities",
    "Capabilities",
    "ChordPart",
    "Command",
    "CommandError",
    "ControlState",
    "DeadLetter",
    "Delivery",
    "EntryState",
    "Job",
    "KeyValueBackend",
    "LeasedScheduler",
    "Letter",
    "Mailbox",
    "MailboxReader",
    "Message",
    "Meta",
    "Pool",
    "PoolCapabilities",
    "Request",
    "ResultBackend",
    "ScheduleEntry",
    "Scheduler",
    "Serializer",
    "Step",
    "Transport",
    "Worker",
    "command",
    "exception_to_meta",
    "meta_to_exception",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'taskq.drivers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

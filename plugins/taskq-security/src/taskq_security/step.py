"""The worker step that loads the signing key and the trusted certificates as the worker starts.

A mistake in them (a missing file, a wrong password, an empty store, checking without a
key of its own) stops the worker at start with the error, instead of at the first message.
"""

from __future__ import annotations

from typing import ClassVar

from taskq.drivers.bootstep import Step
from taskq_security.plugin import load_security


class SecurityStep(Step):
    """Loads taskq-security's key, certificate and store for the worker's app."""

    name: ClassVar[str] = "security"

    def start(self) -> None:
        load_security(self.worker.app)


__all__ = ["SecurityStep"]

"""taskq-security: signed task messages, checked by the worker before it decodes them."""

from __future__ import annotations

from taskq_security.plugin import setup_security

__all__ = ["setup_security"]

"""taskq-mongo: a result backend on MongoDB, in Celery's collections and fields."""

from __future__ import annotations

__all__: list[str] = []

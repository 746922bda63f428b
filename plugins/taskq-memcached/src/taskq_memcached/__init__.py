"""taskq-memcached: a result backend on memcached, in Celery's key layout."""

from __future__ import annotations

__all__: list[str] = []

"""taskq-redis: broker transport and result backend on Redis, in Celery's Redis layout."""

from __future__ import annotations

__all__: list[str] = []

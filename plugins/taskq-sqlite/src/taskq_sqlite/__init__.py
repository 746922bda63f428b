"""taskq-sqlite: broker transport and result backend in one local SQLite file, no server."""

from __future__ import annotations

__all__: list[str] = []

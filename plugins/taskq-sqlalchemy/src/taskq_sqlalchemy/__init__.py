"""taskq-sqlalchemy: a result backend on PostgreSQL, MySQL/MariaDB or SQLite (SQLAlchemy 2)."""

from __future__ import annotations

__all__: list[str] = []

"""taskq-filesystem: broker transport and result backend in plain files, no database."""

from __future__ import annotations

__all__: list[str] = []

"""Controlling workers from a client: ``app.control.revoke(...)``, ``revoke_by_stamped_headers(...)``.

Revocations travel through the result backend's revocation log, so they reach every
worker, including those that are offline now and start later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.app import App


#: How a revocation by stamp begins in the revocation log, where task ids are kept.
STAMP_REVOCATION = "taskq:revoke-stamped:"


def stamp_revocation(stamps: Mapping[str, object]) -> str:
    """The log entry that revokes tasks carrying any of ``stamps`` (name: value or list of values)."""
    return STAMP_REVOCATION + json.dumps(
        {name: value if isinstance(value, list) else [value] for name, value in stamps.items()}, sort_keys=True
    )


def stamp_key(value: object) -> str:
    """A stamp value as a key that compares equal for equal JSON values."""
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):  # keys of mixed types, a value nested too deeply
        return f"<a {type(value).__name__} that cannot be compared>"


def stamp_matches(revoked: Mapping[str, set[str]], stamps: Mapping[str, object]) -> tuple[str, object] | None:
    """The first ``(name, value)`` of ``stamps`` that ``revoked`` names; None when none does.

    A stamp whose value is a list (stamped with ``append_stamps``) matches by any item."""
    for name, value in stamps.items():
        values = revoked.get(name)
        if not values:
            continue
        for item in value if isinstance(value, list) else [value]:
            if stamp_key(item) in values:
                return name, item
    return None


class Control:
    """What a client can ask of the workers. Reached as ``app.control``."""

    def __init__(self, app: App) -> None:
        self.app = app

    def revoke(self, task_id: str | Iterable[str], *, terminate: bool = False) -> None:
        """Make workers skip ``task_id`` (one id or several); ``terminate`` stops it if running.

        Needs a result backend (where the revocation is kept); stopping a running task
        needs a pool that can (prefork, gevent, eventlet, asyncio, thread).
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        for one in ids:
            if not isinstance(one, str) or one.startswith(STAMP_REVOCATION):
                raise ValueError(f"revoke(): {one!r:.100} is not a task id")
        self.app.backend.revoke(ids, terminate=terminate)

    def revoke_by_stamped_headers(
        self, headers: Mapping[str, object], *, terminate: bool = False, destination: object = None
    ) -> None:
        """Make workers skip every task stamped with one of ``headers``' values, and with
        ``terminate`` stop those running; as Celery's.

        ``headers`` maps a stamp's name to a value or a list of values:
        ``revoke_by_stamped_headers({"run": "nightly-42"})`` revokes every task of the
        workflow stamped ``run="nightly-42"`` (see docs/canvas.md, "Stamping"). Like
        :meth:`revoke`, it is kept in the result backend, so a worker started later honours
        it too; ``destination`` (Celery's, for a broadcast) is accepted and not used: every
        worker honours it.
        """
        if not isinstance(headers, Mapping) or not headers:
            raise ValueError(
                f"revoke_by_stamped_headers(): give a mapping of stamp names to values, not {headers!r:.100}"
            )
        for name in headers:
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"revoke_by_stamped_headers(): a stamp's name must be non-empty text, not {name!r:.80}"
                )
        try:
            entry = stamp_revocation(headers)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"revoke_by_stamped_headers(): the stamp values must be JSON values: {exc}") from None
        self.app.backend.revoke([entry], terminate=terminate)


__all__ = ["STAMP_REVOCATION", "Control", "stamp_key", "stamp_matches", "stamp_revocation"]

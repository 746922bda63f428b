"""What the pages and the API do to the workers, through remote control (``app.control``).

Each function reads a checked JSON body (``request.state.body``) and path, asks the
workers, and returns their replies (``[{hostname: reply}]``); an invalid request raises
:class:`BadRequestError`, which the API answers with a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from taskq_dashboard.checks import MAX_NAME

if TYPE_CHECKING:
    from starlette.requests import Request

    from taskq_dashboard.dashboard import Dashboard

#: Seconds an action waits for the workers' replies.
REPLY_TIMEOUT = 1.0
#: Most processes a pool may be grown or shrunk by in one action.
MAX_POOL_STEP = 1_000
_SIGNALS = frozenset({"SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGHUP", "TERM", "KILL", "INT", "QUIT"})


class BadRequestError(ValueError):
    """A request the API refuses, with why (answered with a 400)."""


class NotFoundError(LookupError):
    """What a request names is not there (answered with a 404)."""


def _body(request: Request) -> Mapping[str, object]:
    body = request.state.body
    return body if isinstance(body, Mapping) else {}


def _text(body: Mapping[str, object], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise BadRequestError(f"{name!r} must be a non-empty text of at most {MAX_NAME} characters")
    return value


def _destination(body: Mapping[str, object]) -> list[str] | None:
    workers = body.get("workers")
    if workers is None:
        return None
    if not isinstance(workers, list) or not all(isinstance(w, str) and 0 < len(w) <= MAX_NAME for w in workers):
        raise BadRequestError("'workers' must be a list of worker names")
    return list(workers)


def _done(dashboard: Dashboard, replies: object) -> dict[str, object]:
    dashboard.cluster.refresh()
    return {"ok": True, "replies": replies or []}


def revoke(dashboard: Dashboard, request: Request, *, terminate: bool | None = None) -> dict[str, object]:
    """Revoke one task: waiting, it never runs; with ``terminate``, running, it is stopped."""
    body = _body(request)
    task_id = str(request.path_params["task_id"])
    if not 0 < len(task_id) <= MAX_NAME:
        raise BadRequestError("a task id is at most 255 characters")
    if terminate is None:
        flag = body.get("terminate", False)
        if not isinstance(flag, bool):
            raise BadRequestError("'terminate' must be true or false")
        terminate = flag
    signal = _text(body, "signal", required=False)
    if signal is not None and signal.upper() not in _SIGNALS:
        raise BadRequestError(f"unknown signal {signal!r}; use one of: {', '.join(sorted(_SIGNALS))}")
    replies = dashboard.app.control.revoke(
        task_id,
        destination=_destination(body),
        terminate=terminate,
        signal=signal,
        reply=True,
        timeout=REPLY_TIMEOUT,
    )
    return _done(dashboard, replies)


def terminate(dashboard: Dashboard, request: Request) -> dict[str, object]:
    """Revoke one task and stop it where it runs."""
    return revoke(dashboard, request, terminate=True)


def rate_limit(dashboard: Dashboard, request: Request) -> dict[str, object]:
    """Set a task's rate limit on the workers (``"10/m"``; ``null`` or ``0`` for none)."""
    body = _body(request)
    task_name = _text(body, "task_name")
    rate = body.get("rate_limit")
    if rate is not None and not (isinstance(rate, (str, int, float)) and not isinstance(rate, bool)):
        raise BadRequestError("'rate_limit' must be a rate such as \"10/m\", a number per second, or null")
    if isinstance(rate, str) and len(rate) > 32:
        raise BadRequestError("'rate_limit' is too long")
    replies = dashboard.app.control.rate_limit(
        str(task_name), rate, destination=_destination(body), reply=True, timeout=REPLY_TIMEOUT
    )
    return _done(dashboard, replies)


def pool(dashboard: Dashboard, request: Request, *, grow: bool) -> dict[str, object]:
    """Grow or shrink one worker's pool by ``n`` (1 unless given)."""
    body = _body(request)
    hostname = str(request.path_params["hostname"])
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_POOL_STEP:
        raise BadRequestError(f"'n' must be a whole number from 1 to {MAX_POOL_STEP}")
    control = dashboard.app.control
    method = control.pool_grow if grow else control.pool_shrink
    return _done(dashboard, method(n, destination=[hostname], reply=True, timeout=REPLY_TIMEOUT))


def consumer(dashboard: Dashboard, request: Request, *, add: bool) -> dict[str, object]:
    """Have one worker start or stop consuming a queue."""
    body = _body(request)
    hostname = str(request.path_params["hostname"])
    queue = str(_text(body, "queue"))
    control = dashboard.app.control
    if add:
        replies = control.add_consumer(queue, destination=[hostname], reply=True, timeout=REPLY_TIMEOUT)
    else:
        replies = control.cancel_consumer(queue, destination=[hostname], reply=True, timeout=REPLY_TIMEOUT)
    return _done(dashboard, replies)

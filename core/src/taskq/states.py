"""Task states, named and ordered as Celery names them."""

from __future__ import annotations

PENDING = "PENDING"  # unknown, or waiting to be run
RECEIVED = "RECEIVED"  # a worker holds it
STARTED = "STARTED"  # running (recorded only with track_started)
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
RETRY = "RETRY"
REJECTED = "REJECTED"
IGNORED = "IGNORED"

#: States after which a task's outcome will not change.
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
#: States that are not final.
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
#: Final states that mean something went wrong.
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})

ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, REVOKED, RETRY, REJECTED, IGNORED})

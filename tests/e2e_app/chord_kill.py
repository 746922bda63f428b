"""The tasks of tests/e2e_app/tasks.py, on a worker that dies the moment it is about to send
a chord's body: ``taskq worker -A e2e_app.chord_kill``.

When the message being published is the body (the task ``collect``) and the file named by
$E2E_KILL_BEFORE_BODY does not exist yet, the receiver creates it and kills its own
process with SIGKILL: the worker has taken the chord, and the body is not published. Run
on the solo pool, that process is the worker itself, so the header task it was running
(acks late) is not acknowledged and comes back to the next worker.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from e2e_app.tasks import app, collect
from taskq import signals

__all__ = ["app"]


@signals.before_task_publish.connect
def die_before_sending_the_body(sender: object = None, **kwargs: object) -> None:
    marker = os.environ.get("E2E_KILL_BEFORE_BODY")
    if sender != collect.name or not marker:
        return
    try:
        Path(marker).touch(exist_ok=False)  # once: the next worker sends the body
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)

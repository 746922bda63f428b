"""taskq top in a real terminal: tmux runs it, the test reads its screen and presses keys."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest
from e2e_helpers import WorkerProcess, wait_until

from taskq import App
from taskq.errors import TaskRevokedError

pytestmark = pytest.mark.integration

TASKS = "e2e_app.tasks"
# Seconds the screen may take to show something.
SCREEN_TIMEOUT = 30.0


class Terminal:
    """A private tmux server running one command in a 160x45 window."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"taskq-top-{uuid.uuid4().hex[:8]}"
        line = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        self._tmux("new-session", "-d", "-x", "160", "-y", "45", "-s", "top", f"env {line} {shlex.join(command)}")

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "top")

    def press(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "top", *keys)

    def wait_for(self, text: str) -> str:
        wait_until(lambda: text in self.screen(), SCREEN_TIMEOUT, f"{text!r} on the screen:\n{self.screen()}")
        return self.screen()

    def alive(self) -> bool:
        return (
            subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", "top"], capture_output=True).returncode == 0
        )

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def terminal(e2e_env: dict[str, str]) -> Iterator[Callable[[list[str]], Terminal]]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: apt-get install -y tmux")
    opened: list[Terminal] = []

    def open_terminal(command: list[str]) -> Terminal:
        env = {**e2e_env, "TERM": "xterm-256color", "PATH": os.environ.get("PATH", "")}
        made = Terminal(command, env)
        opened.append(made)
        return made

    yield open_terminal
    for made in opened:
        print(f"---- the last screen ----\n{made.screen()}")
        made.close()


def test_taskq_top_shows_workers_and_tasks_and_revokes_from_the_screen(
    terminal: Callable[[list[str]], Terminal], spawn_worker: Callable[..., WorkerProcess], e2e_client: App
) -> None:
    top = terminal([sys.executable, "-m", "taskq", "-A", TASKS, "top"])
    top.wait_for("taskq top")
    spawn_worker("-E", "-n", "topped@test").wait_ready()
    screen = top.wait_for("topped@test")
    assert "online" in screen
    done = e2e_client.send_task(f"{TASKS}.add", (2, 3))
    assert done.get(timeout=SCREEN_TIMEOUT) == 5
    screen = top.wait_for(done.id)
    assert "SUCCESS" in screen.split(done.id, 1)[1].splitlines()[0]
    # A task due in a few seconds, shown at once (task-sent) and on top of the list: revoke it
    # from the screen before it is due.
    e2e_client.conf.update(task_send_sent_event=True)
    later = e2e_client.send_task(f"{TASKS}.add", (1, 1), countdown=4)
    screen = top.wait_for(later.id)
    assert screen.index(later.id) < screen.index(done.id)  # the newest first, selected
    top.press("r")
    top.wait_for(f"revoked {later.id}")
    with pytest.raises(TaskRevokedError):
        later.get(timeout=SCREEN_TIMEOUT)
    row = top.wait_for("REVOKED").split(later.id, 1)[1].splitlines()[0]
    assert "REVOKED" in row
    top.press("Down", "Enter")  # the details of the task below it: the one that succeeded
    details = top.wait_for("Escape or Enter: back")
    assert f"task {done.id}" in details and "result    5" in details and "task-succeeded" in details
    top.press("Escape")
    top.wait_for("UUID")
    top.press("q")
    wait_until(lambda: not top.alive(), SCREEN_TIMEOUT, "taskq top to quit on q")

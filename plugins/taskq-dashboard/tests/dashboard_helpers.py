"""What the dashboard's tests share: a live cluster (a ``taskq worker -P solo -E`` process and
a ``taskq dashboard`` process on a SQLite broker), an HTTP client, and polling with a deadline."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

from taskq import App
from taskq.testing import WorkerProcess

#: Seconds a process may take to start, a task to show on the dashboard, a request to answer.
TIMEOUT = 30.0
TOKEN = "test-token-" + uuid.uuid4().hex
READY_LINE = "Uvicorn running on"

APP_MODULE = """
import time
from pathlib import Path

from taskq import App

app = App("dash-tests")


@app.task(name="dash.add")
def add(x, y):
    return x + y


@app.task(name="dash.slow")
def slow(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name="dash.fail")
def fail(word):
    raise ValueError(f"boom {word}")


@app.task(name="dash.mark")
def mark(path):
    Path(path).write_text("ran")
    return path
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], object], what: str, timeout: float = TIMEOUT, every: float = 0.1) -> object:
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: still not so after {timeout}s (last: {last!r:.500})")


@dataclass
class Reply:
    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, object]:
        assert isinstance(self.body, dict), self.body
        return self.body


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Client:
    """HTTP requests to a dashboard, with a bearer token, basic credentials, or cookies."""

    def __init__(self, base: str, token: str | None = None, basic: tuple[str, str] | None = None) -> None:
        self.base = base
        self.token = token
        self.basic = basic
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect())

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if self.token:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        if self.basic:
            pair = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            sent.setdefault("Authorization", f"Basic {pair}")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with self.opener.open(request, timeout=TIMEOUT) as response:
                status, content, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, content, got = error.code, error.read(), dict(error.headers)
        try:
            parsed: object = json.loads(content) if content else None
        except ValueError:
            parsed = content.decode("utf-8", "replace")
        return Reply(status, parsed, got)

    def get(self, path: str, **options: object) -> Reply:
        return self.request("GET", path, **options)  # type: ignore[arg-type]

    def post(self, path: str, body: object = None, **options: object) -> Reply:
        return self.request("POST", path, body if body is not None else {}, **options)  # type: ignore[arg-type]

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)


@dataclass
class LiveCluster:
    """A worker and a dashboard on one SQLite broker, and a client app to send tasks."""

    folder: Path
    app: App
    worker: WorkerProcess
    dashboard: WorkerProcess
    url: str
    queue: str
    extra_queue: str
    env: dict[str, str]

    def client(self, token: str | None = TOKEN) -> Client:
        return Client(self.url, token)

    def send(self, name: str, *args: object, **options: object) -> str:
        return self.app.send_task(name, args=args, queue=self.queue, **options).id  # type: ignore[arg-type]

    def task(self, task_id: str, state: str | None = None, timeout: float = TIMEOUT) -> dict[str, object]:
        """The task as the dashboard's API shows it, once it is there (in ``state``, when given)."""
        client = self.client()

        def look() -> dict[str, object] | None:
            reply = client.get(f"/api/tasks/{task_id}")
            if reply.status != 200:
                return None
            found = reply.json()
            if not found.get("events"):
                return None  # known to the result store only, not yet to the history
            return found if state is None or found.get("state") == state else None

        return wait_until(look, f"task {task_id} on the dashboard in state {state}", timeout)  # type: ignore[return-value]


def start_dashboard(
    folder: Path, env: dict[str, str], db: Path, *args: str, port: int | None = None, log_name: str = "dashboard"
) -> tuple[WorkerProcess, str]:
    """A ``taskq dashboard`` process on ``db`` (its URL once it serves)."""
    port = port or free_port()
    process = WorkerProcess(
        [sys.executable, "-m", "taskq", "dashboard", "-A", "dash_app", "--port", str(port), "--db", str(db), *args],
        folder / f"{log_name}-{port}.log",
        env=env,
        cwd=folder,
    )
    process.wait_for(READY_LINE, TIMEOUT)
    return process, f"http://127.0.0.1:{port}"


def stop(process: WorkerProcess) -> None:
    """SIGTERM, then kill -9 when it does not stop in time; print its log (shown when a test failed)."""
    import signal

    process.signal(signal.SIGTERM)
    try:
        process.wait(15)
    except Exception:
        process.kill()
    print(f"---- {process.log_path.name} ----\n{process.log()[-6000:]}")


@contextlib.contextmanager
def served(application: object) -> Iterator[str]:
    """``application`` (ASGI) served by uvicorn on a free loopback port from a thread; its URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "the server started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)

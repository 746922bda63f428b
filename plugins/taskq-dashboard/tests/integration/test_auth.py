"""Authentication on a real dashboard process: no token, no entry; the login form; basic auth; CSRF;
and an open dashboard refused on a non-loopback address."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from dashboard_helpers import TIMEOUT, TOKEN, Client, LiveCluster, start_dashboard, stop

pytestmark = pytest.mark.integration

API_PATHS = ["/api/overview", "/api/workers", "/api/queues", "/api/tasks", "/api/openapi.json", "/api/stream"]


def test_the_api_without_a_token_is_401(cluster: LiveCluster) -> None:
    anonymous = cluster.client(token=None)
    for path in [*API_PATHS, f"/api/tasks/{uuid.uuid4()}"]:
        reply = anonymous.get(path)
        assert reply.status == 401, path
        assert reply.headers.get("www-authenticate", "").startswith("Bearer")
    assert anonymous.post(f"/api/tasks/{uuid.uuid4()}/revoke").status == 401
    assert cluster.client(token="wrong").get("/api/tasks").status == 401
    assert cluster.client().get("/api/tasks").status == 200


def test_a_page_without_a_token_goes_to_the_login_form_which_sets_a_session(cluster: LiveCluster) -> None:
    browser = cluster.client(token=None)
    reply = browser.get("/tasks")
    assert reply.status == 303
    assert reply.headers["location"] == "/login?next=/tasks"
    wrong = browser.request(
        "POST", "/login?next=/tasks", raw=b"token=nope", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert wrong.status == 401 and "Wrong token" in str(wrong.body)
    right = browser.request(
        "POST",
        "/login?next=/tasks",
        raw=f"token={TOKEN}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert right.status == 303 and right.headers["location"] == "/tasks"
    session = browser.cookie("taskq_dashboard_session")
    assert session and TOKEN not in session
    assert browser.get("/tasks").status == 200
    assert browser.get("/api/tasks").status == 200


def test_a_cookie_session_must_send_the_csrf_token_to_act(cluster: LiveCluster) -> None:
    browser = cluster.client(token=None)
    browser.request(
        "POST", "/login", raw=f"token={TOKEN}".encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    csrf = browser.cookie("taskq_dashboard_csrf")
    assert csrf
    path = f"/api/tasks/{uuid.uuid4()}/revoke"
    assert browser.post(path).status == 403
    assert browser.post(path, headers={"X-CSRF-Token": "forged"}).status == 403
    assert browser.post(path, headers={"X-CSRF-Token": csrf}).status == 200


def test_the_login_form_never_sends_the_browser_elsewhere(cluster: LiveCluster) -> None:
    browser = cluster.client(token=None)
    reply = browser.request(
        "POST",
        "/login?next=//evil.example.org/",
        raw=f"token={TOKEN}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.headers["location"] == "/"


@pytest.fixture(scope="module")
def basic_dashboard(cluster: LiveCluster) -> Iterator[str]:
    process, url = start_dashboard(
        cluster.folder,
        cluster.env,
        cluster.folder / f"basic-{uuid.uuid4().hex}.db",
        "--auth",
        "basic",
        "--basic-auth",
        "ann:s3cret",
        log_name="basic",
    )
    yield url
    stop(process)


def test_basic_auth_lets_in_only_the_right_user_and_password(basic_dashboard: str) -> None:
    assert Client(basic_dashboard).get("/api/tasks").status == 401
    assert Client(basic_dashboard).get("/api/tasks").headers["www-authenticate"].startswith("Basic")
    assert Client(basic_dashboard).get("/workers").status == 401  # the browser asks for the password
    assert Client(basic_dashboard, basic=("ann", "wrong")).get("/api/tasks").status == 401
    assert Client(basic_dashboard, basic=("bob", "s3cret")).get("/api/tasks").status == 401
    assert Client(basic_dashboard, basic=("ann", "s3cret")).get("/api/tasks").status == 200
    assert Client(basic_dashboard, token=TOKEN).get("/api/tasks").status == 401  # only what --auth names


def test_starting_open_on_every_address_is_refused_with_how_to_set_a_token(cluster: LiveCluster) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taskq", "dashboard", "-A", "dash_app", "--address", "0.0.0.0", "--port", "0"],
        cwd=cluster.folder,
        env={**cluster.env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to serve the dashboard on 0.0.0.0 without authentication" in done.stderr
    assert "TASKQ_DASHBOARD_TOKEN" in done.stderr
    assert "Uvicorn running" not in done.stderr + done.stdout

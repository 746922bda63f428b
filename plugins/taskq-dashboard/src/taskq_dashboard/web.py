"""The dashboard's web application: pages, the REST API, the live stream, and the actions.

Built with Starlette (:func:`create_app`); served by uvicorn (:func:`serve`). The pages are
one HTML shell and a script (``static/app.js``) that draws each view from the API and
redraws it when the live stream (``/api/stream``, Server-Sent Events) says the cluster
changed. Every route but the login form and the static files asks :class:`~taskq_dashboard.auth.Auth`
first. Further routes come from plugins through the ``taskq_dashboard.routes`` entry point
group (taskq-prometheus's ``/metrics``): see :func:`plugin_routes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib.metadata
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from taskq_dashboard import actions, openapi
from taskq_dashboard.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, new_csrf_token

if TYPE_CHECKING:
    from taskq_dashboard.dashboard import Dashboard

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: Seconds between two looks of the live stream at the history (an update is sent when it changed).
STREAM_INTERVAL = 0.5
#: Seconds between two keep-alive comments on a quiet stream.
KEEPALIVE = 15.0
#: The entry point group whose functions add routes: ``f(dashboard) -> list[starlette Route]``.
ROUTES_GROUP = "taskq_dashboard.routes"
#: Longest login form read, in bytes.
MAX_FORM = 4096
#: The paths of the pages (all served by the same shell; the script draws the view).
PAGES = ("/", "/workers", "/queues", "/tasks", "/tasks/{task_id}")

Handler = Callable[[Request], Awaitable[Response]]


def _json(data: object, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


def _error(status: int, message: str) -> JSONResponse:
    return _json({"error": message}, status)


def create_app(dashboard: Dashboard, extra_routes: Sequence[BaseRoute] = (), *, manage: bool = False) -> Starlette:
    """The Starlette application serving ``dashboard`` (and ``extra_routes``, behind the same auth);
    with ``manage``, its lifespan starts the dashboard's threads and stops them."""
    auth = dashboard.auth
    template = (HERE / "templates" / "index.html").read_text(encoding="utf-8")
    login_template = (HERE / "templates" / "login.html").read_text(encoding="utf-8")

    def challenge(request: Request, is_page: bool) -> Response:
        """What a request without credentials gets: the login form for a page, else a 401."""
        if is_page and auth.token is not None:
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        headers = {"WWW-Authenticate": 'Basic realm="taskq dashboard"'} if auth.username else {}
        if auth.token is not None and not auth.username:
            headers = {"WWW-Authenticate": 'Bearer realm="taskq dashboard"'}
        return JSONResponse({"error": "authentication required"}, status_code=401, headers=headers)

    def guarded(handler: Handler, *, is_page: bool = False) -> Handler:
        """``handler`` behind authentication, and for a POST, behind the CSRF check."""

        async def check(request: Request) -> Response:
            authorization = request.headers.get("authorization")
            if not auth.allows(authorization, request.cookies.get(SESSION_COOKIE)):
                return challenge(request, is_page)
            if request.method == "POST" and not auth.by_bearer(authorization):
                cookie = request.cookies.get(CSRF_COOKIE)
                header = request.headers.get(CSRF_HEADER)
                if not cookie or not header or cookie != header:
                    return _error(
                        403, f"missing or wrong CSRF token: send the {CSRF_COOKIE} cookie's value in {CSRF_HEADER}"
                    )
            return await handler(request)

        return check

    async def page(request: Request) -> Response:
        response = HTMLResponse(template, headers={"Cache-Control": "no-store"})
        if not request.cookies.get(CSRF_COOKIE):
            response.set_cookie(CSRF_COOKIE, new_csrf_token(), httponly=False, samesite="strict", path="/")
        return response

    async def login(request: Request) -> Response:
        target = request.query_params.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # never send the browser elsewhere
        message = ""
        if request.method == "POST":
            # the form is URL-encoded: read here, without Starlette's multipart parser (another dependency)
            raw = await request.body()
            try:
                form = parse_qs(raw[:MAX_FORM].decode("utf-8", "replace"), max_num_fields=10)
            except ValueError:  # more fields than a login form has
                form = {}
            token = (form.get("token") or [""])[0]
            if auth.token is not None and token and auth.login(token):
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(SESSION_COOKIE, cast(str, auth.session), httponly=True, samesite="strict", path="/")
                response.set_cookie(CSRF_COOKIE, new_csrf_token(), httponly=False, samesite="strict", path="/")
                return response
            message = "Wrong token." if auth.token is not None else "This dashboard has no token to log in with."
        body = login_template.replace("{{next}}", html.escape(target, quote=True)).replace(
            "{{message}}", html.escape(message)
        )
        return HTMLResponse(body, status_code=401 if message else 200)

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def sync(function: Callable[[Request], object]) -> Handler:
        """An API endpoint whose work blocks (SQLite, remote control): run in the thread pool."""

        async def endpoint(request: Request) -> Response:
            body: object = None
            if request.method == "POST":
                raw = await request.body()
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    return _error(400, "the body must be a JSON object")
                if not isinstance(body, dict):
                    return _error(400, "the body must be a JSON object")
            request.state.body = body
            try:
                result = await run_in_threadpool(function, request)
            except actions.BadRequestError as exc:
                return _error(400, str(exc))
            except actions.NotFoundError as exc:
                return _error(404, str(exc))
            except Exception as exc:
                logger.exception("%s %s failed", request.method, request.url.path)
                return _error(502, f"{type(exc).__name__}: {exc}")
            return result if isinstance(result, Response) else _json(result)

        return endpoint

    async def stream(request: Request) -> Response:
        async def updates() -> object:
            yield "retry: 2000\n\n"
            last: object = None
            quiet_since = time.monotonic()
            while True:
                if await request.is_disconnected():
                    return
                signature = dashboard.signature()
                if signature != last:
                    last = signature
                    summary = await run_in_threadpool(dashboard.overview)
                    yield f"event: update\ndata: {json.dumps(summary)}\n\n"
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > KEEPALIVE:
                    yield ": keep-alive\n\n"
                    quiet_since = time.monotonic()
                await asyncio.sleep(STREAM_INTERVAL)

        return StreamingResponse(
            updates(),  # type: ignore[arg-type]  # an async generator of text
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def openapi_document(request: Request) -> Response:
        return _json(openapi.document())

    api: list[tuple[str, Callable[[Request], object], list[str]]] = [
        ("/api/overview", lambda request: dashboard.overview(), ["GET"]),
        ("/api/workers", lambda request: {"workers": dashboard.cluster.workers()}, ["GET"]),
        ("/api/queues", lambda request: {"queues": dashboard.cluster.queues()}, ["GET"]),
        ("/api/tasks", dashboard.list_tasks, ["GET"]),
        ("/api/task-names", lambda request: {"names": dashboard.store.task_names()}, ["GET"]),
        ("/api/rates", dashboard.rates, ["GET"]),
        ("/api/tasks/{task_id}", dashboard.task, ["GET"]),
        ("/api/tasks/{task_id}/workflow", dashboard.workflow, ["GET"]),
        ("/api/tasks/{task_id}/revoke", lambda request: actions.revoke(dashboard, request), ["POST"]),
        ("/api/tasks/{task_id}/terminate", lambda request: actions.terminate(dashboard, request), ["POST"]),
        ("/api/rate-limit", lambda request: actions.rate_limit(dashboard, request), ["POST"]),
        ("/api/workers/{hostname}/pool/grow", lambda request: actions.pool(dashboard, request, grow=True), ["POST"]),
        ("/api/workers/{hostname}/pool/shrink", lambda request: actions.pool(dashboard, request, grow=False), ["POST"]),
        (
            "/api/workers/{hostname}/consumers/cancel",
            lambda request: actions.consumer(dashboard, request, add=False),
            ["POST"],
        ),
        (
            "/api/workers/{hostname}/consumers/add",
            lambda request: actions.consumer(dashboard, request, add=True),
            ["POST"],
        ),
    ]
    routes: list[BaseRoute] = [Route(path, guarded(page, is_page=True), methods=["GET"]) for path in PAGES]
    routes += [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/openapi.json", guarded(openapi_document), methods=["GET"]),
        Route("/api/stream", guarded(stream), methods=["GET"]),
        *(Route(path, guarded(sync(function)), methods=methods) for path, function, methods in api),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    for route in extra_routes:
        endpoint = getattr(route, "endpoint", None)
        if isinstance(route, Route) and endpoint is not None:
            route = Route(route.path, guarded(_as_async(endpoint)), methods=route.methods, name=route.name)
        routes.append(route)
    if not manage:
        return Starlette(routes=routes)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(dashboard.start)
        try:
            yield
        finally:
            await run_in_threadpool(dashboard.stop)

    return Starlette(routes=routes, lifespan=lifespan)


def _as_async(endpoint: Callable[[Request], object]) -> Handler:
    async def call(request: Request) -> Response:
        result = endpoint(request)
        if asyncio.iscoroutine(result):
            result = await result
        return cast(Response, result)

    return call


def plugin_routes(dashboard: Dashboard) -> list[BaseRoute]:
    """The routes installed plugins add (entry points in :data:`ROUTES_GROUP`).

    An entry point names a function that takes the :class:`~taskq_dashboard.dashboard.Dashboard`
    and returns ``{path: handler}``: each handler is called with no argument, in a worker
    thread, and returns ``(body, content type)``. A plugin needs no web framework of its own
    (taskq-prometheus's ``/metrics`` is one). A plugin that fails to load, or a path that is
    not ``/...`` or is the dashboard's own, is logged and left out: the dashboard serves on.
    """
    found: list[BaseRoute] = []
    taken = {"/login", "/logout", *PAGES}
    for entry_point in importlib.metadata.entry_points(group=ROUTES_GROUP):
        try:
            handlers = entry_point.load()(dashboard)
            if not isinstance(handlers, Mapping):
                raise TypeError(f"it returned {type(handlers).__name__}, not a mapping of paths to handlers")
        except Exception:
            logger.exception("the dashboard routes of %s failed to load; left out", entry_point.value)
            continue
        for path, handler in handlers.items():
            if (
                not isinstance(path, str)
                or not path.startswith("/")
                or path in taken
                or path.startswith(("/api", "/static"))
            ):
                logger.error("the dashboard route %r of %s is not a free path; left out", path, entry_point.value)
                continue
            if not callable(handler):
                logger.error("the dashboard route %s of %s has no callable handler; left out", path, entry_point.value)
                continue
            taken.add(path)
            found.append(Route(path, _plain(handler), methods=["GET"]))
    return found


def _plain(handler: Callable[[], tuple[bytes, str]]) -> Handler:
    """A plugin's handler as an endpoint: its body and content type, made in a worker thread."""

    async def endpoint(request: Request) -> Response:
        try:
            body, content_type = await run_in_threadpool(handler)
        except Exception:
            logger.exception("the dashboard route %s failed", request.url.path)
            return _error(500, "this route failed; the dashboard's log says why")
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return endpoint

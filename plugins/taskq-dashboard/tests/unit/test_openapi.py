"""The OpenAPI document describes every API route, and only those."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Route

from taskq import App
from taskq_dashboard.dashboard import Dashboard
from taskq_dashboard.openapi import document
from taskq_dashboard.web import create_app


def test_every_api_route_is_described_with_its_methods(tmp_path: Path) -> None:
    board = Dashboard(App("openapi", broker_url="memory://"), str(tmp_path / "h.db"))
    served = {
        route.path: {m.lower() for m in route.methods or ()} - {"head"}
        for route in create_app(board).routes
        if isinstance(route, Route) and route.path.startswith("/api/") and route.path != "/api/openapi.json"
    }
    paths = document()["paths"]
    assert isinstance(paths, dict)
    described = {path: set(operations) for path, operations in paths.items()}
    assert described == served


def test_the_document_names_its_version_and_security() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert {"bearer", "basic", "session"} <= set(doc["components"]["securitySchemes"])  # type: ignore[index]

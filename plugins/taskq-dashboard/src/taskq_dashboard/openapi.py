"""The REST API described as an OpenAPI 3.1 document, served at ``/api/openapi.json``.

Written by hand from the routes of :mod:`taskq_dashboard.web`; a test checks that every
API route is described and every described path is served.
"""

from __future__ import annotations

_package = "taskq-dashboard"

_VERSION = "0.1.0"


def _ref(name: str) -> dict[str, object]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, object], required: bool = False) -> dict[str, object]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, object]) -> dict[str, object]:
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}},
        "401": {"description": "authentication required"},
    }


def _action(summary: str, body: dict[str, object], parameter: str | None, required: bool = False) -> dict[str, object]:
    operation: dict[str, object] = {
        "summary": summary,
        "tags": ["actions"],
        "requestBody": _json_body(body, required),
        "responses": {
            **_ok("the workers' replies", _ref("Replies")),
            "400": {"description": "an invalid request", "content": {"application/json": {"schema": _ref("Error")}}},
            "403": {"description": "no CSRF token (a browser's POST without a bearer token)"},
        },
    }
    if parameter:
        operation["parameters"] = [{"name": parameter, "in": "path", "required": True, "schema": {"type": "string"}}]
    return {"post": operation}


def _query(name: str, description: str, kind: str = "string") -> dict[str, object]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": kind}}


_WORKERS_PROPERTY: dict[str, object] = {
    "workers": {
        "type": "array",
        "items": {"type": "string"},
        "description": "only these workers (default: every worker)",
    }
}


def document() -> dict[str, object]:
    """The OpenAPI document of the dashboard's API."""
    task_id = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskq dashboard API",
            "version": _VERSION,
            "description": f"The REST API of {_package}: workers, queues, tasks, and actions through remote control.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "session": {"type": "apiKey", "in": "cookie", "name": "taskq_dashboard_session"},
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
                "Replies": {
                    "type": "object",
                    "properties": {
                        "ok": {"type": "boolean"},
                        "replies": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Task": {
                    "type": "object",
                    "properties": {
                        name: {"type": ["string", "null"]}
                        for name in (
                            "uuid",
                            "name",
                            "state",
                            "worker",
                            "args",
                            "kwargs",
                            "eta",
                            "expires",
                            "root_id",
                            "parent_id",
                            "result",
                            "exception",
                            "traceback",
                            "queue",
                        )
                    }
                    | {
                        "retries": {"type": ["integer", "null"]},
                        "runtime": {"type": ["number", "null"]},
                        "first_seen": {"type": "number"},
                        "updated": {"type": "number"},
                        "state_at": {"type": "number"},
                    },
                    "required": ["uuid", "state"],
                },
                "TaskDetail": {
                    "allOf": [
                        _ref("Task"),
                        {
                            "type": "object",
                            "properties": {
                                "events": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "type": {"type": "string"},
                                            "timestamp": {"type": "number"},
                                            "hostname": {"type": ["string", "null"]},
                                        },
                                    },
                                },
                                "children": {"type": "array", "items": {"type": "object"}},
                                "record": {"type": ["object", "null"], "description": "the result store's record"},
                            },
                        },
                    ]
                },
                "Worker": {
                    "type": "object",
                    "properties": {
                        "hostname": {"type": "string"},
                        "online": {"type": "boolean"},
                        "last_heartbeat": {"type": ["number", "null"]},
                        "active": {"type": "integer"},
                        "processed": {"type": "integer"},
                        "loadavg": {"type": "array", "items": {"type": "number"}},
                        "pool": {"type": ["string", "null"]},
                        "concurrency": {"type": ["integer", "null"]},
                        "queues": {"type": "array", "items": {"type": "string"}},
                        "active_tasks": {"type": "array", "items": {"type": "object"}},
                        "reserved_tasks": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Queue": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "depth": {"type": ["integer", "null"], "description": "null where the broker cannot tell"},
                        "consumers": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
        "security": [{"bearer": []}, {"basic": []}, {"session": []}],
        "paths": {
            "/api/overview": {
                "get": {
                    "summary": "Counts: workers, tasks by state, events taken and skipped",
                    "tags": ["cluster"],
                    "responses": _ok("the counts", {"type": "object"}),
                }
            },
            "/api/workers": {
                "get": {
                    "summary": "Every worker, from its events and remote control",
                    "tags": ["cluster"],
                    "responses": _ok(
                        "the workers",
                        {"type": "object", "properties": {"workers": {"type": "array", "items": _ref("Worker")}}},
                    ),
                }
            },
            "/api/queues": {
                "get": {
                    "summary": "Each queue, its depth (where the broker tells) and consumers",
                    "tags": ["cluster"],
                    "responses": _ok(
                        "the queues",
                        {"type": "object", "properties": {"queues": {"type": "array", "items": _ref("Queue")}}},
                    ),
                }
            },
            "/api/tasks": {
                "get": {
                    "summary": "Search the task history, most recent first, a page at a time",
                    "tags": ["tasks"],
                    "parameters": [
                        _query("name", "task name (exact; a prefix when it ends with *)"),
                        _query("state", "state (SUCCESS, FAILURE, STARTED, RECEIVED, REVOKED...)"),
                        _query("id", "task id (prefix)"),
                        _query("search", "text anywhere in the arguments"),
                        _query("worker", "worker's name"),
                        _query("offset", "tasks to skip", "integer"),
                        _query("limit", "tasks in the page (at most 500; default 50)", "integer"),
                    ],
                    "responses": _ok(
                        "a page of tasks",
                        {
                            "type": "object",
                            "properties": {
                                "tasks": {"type": "array", "items": _ref("Task")},
                                "total": {"type": "integer"},
                                "offset": {"type": "integer"},
                                "limit": {"type": "integer"},
                            },
                        },
                    ),
                }
            },
            "/api/task-names": {
                "get": {
                    "summary": "The task names in the history",
                    "tags": ["tasks"],
                    "responses": _ok("the names", {"type": "object"}),
                }
            },
            "/api/rates": {
                "get": {
                    "summary": "Tasks received, succeeded, failed... and runtimes per 10 s",
                    "tags": ["tasks"],
                    "parameters": [_query("minutes", "how far back (default 30)", "integer")],
                    "responses": _ok("the points", {"type": "object"}),
                }
            },
            "/api/tasks/{task_id}": {
                "get": {
                    "summary": "One task: fields, state history, result store record, children",
                    "tags": ["tasks"],
                    "parameters": [task_id],
                    "responses": _ok("the task", _ref("TaskDetail")) | {"404": {"description": "unknown task"}},
                }
            },
            "/api/tasks/{task_id}/workflow": {
                "get": {
                    "summary": "The workflow tree the task belongs to (chain, group, chord)",
                    "tags": ["tasks"],
                    "parameters": [task_id],
                    "responses": _ok("the tree", {"type": "object"}),
                }
            },
            "/api/stream": {
                "get": {
                    "summary": "Server-Sent Events: an 'update' event with the overview whenever it changes",
                    "tags": ["cluster"],
                    "responses": {"200": {"description": "text/event-stream"}},
                }
            },
            "/api/tasks/{task_id}/revoke": _action(
                "Revoke a task (it never runs); with terminate, stop it where it runs",
                {
                    "type": "object",
                    "properties": {"terminate": {"type": "boolean"}, "signal": {"type": "string"}, **_WORKERS_PROPERTY},
                },
                "task_id",
            ),
            "/api/tasks/{task_id}/terminate": _action(
                "Revoke a task and stop it where it runs",
                {"type": "object", "properties": {"signal": {"type": "string"}, **_WORKERS_PROPERTY}},
                "task_id",
            ),
            "/api/rate-limit": _action(
                "Set a task's rate limit on the workers",
                {
                    "type": "object",
                    "required": ["task_name"],
                    "properties": {
                        "task_name": {"type": "string"},
                        "rate_limit": {"type": ["string", "number", "null"]},
                        **_WORKERS_PROPERTY,
                    },
                },
                None,
                required=True,
            ),
            "/api/workers/{hostname}/pool/grow": _action(
                "Add n processes (threads) to a worker's pool",
                {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}},
                "hostname",
            ),
            "/api/workers/{hostname}/pool/shrink": _action(
                "Take n processes (threads) from a worker's pool",
                {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}},
                "hostname",
            ),
            "/api/workers/{hostname}/consumers/add": _action(
                "Have a worker consume a queue",
                {"type": "object", "required": ["queue"], "properties": {"queue": {"type": "string"}}},
                "hostname",
                required=True,
            ),
            "/api/workers/{hostname}/consumers/cancel": _action(
                "Have a worker stop consuming a queue",
                {"type": "object", "required": ["queue"], "properties": {"queue": {"type": "string"}}},
                "hostname",
                required=True,
            ),
        },
    }

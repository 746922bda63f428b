"""``task_routes`` read into routers, in Celery's forms: tables, functions, classes, dotted paths.

Private: :class:`taskq.routing.Routing` asks them, first answer wins.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from taskq.errors import ConfigError

#: A router: ``(name, args, kwargs, options, task=...) -> queue name, table, queue or None``.
RouterFunction = Callable[..., object]


class MapRouter:
    """``task_routes`` as a table: task names or glob patterns (or compiled regexes) -> routes."""

    def __init__(self, table: Mapping[object, object]) -> None:
        self.exact: dict[str, object] = {}
        self.patterns: list[tuple[Callable[[str], object], object]] = []
        for pattern, target in table.items():
            if not isinstance(target, (str, Mapping)) and not hasattr(target, "name"):
                raise ConfigError(
                    f"task_routes[{pattern!r}] is a queue name or a table (queue, exchange, routing_key), "
                    f"not {target!r:.60}"
                )
            if isinstance(pattern, re.Pattern):
                self.patterns.append((pattern.match, target))
            elif isinstance(pattern, str):
                if any(c in pattern for c in "*?["):
                    self.patterns.append((re.compile(fnmatch.translate(pattern)).match, target))
                else:
                    self.exact[pattern] = target
            else:
                raise ConfigError(f"task_routes keys are task names or glob patterns, not {pattern!r:.60}")

    def __call__(self, name: str, *args: object, **kwargs: object) -> object:
        target = self.exact.get(name)
        if target is not None:
            return target
        for match, target in self.patterns:
            if match(name):
                return target
        return None


def routers(value: object) -> list[RouterFunction]:
    """``task_routes`` as a list of routers: a table, a function, an object with
    ``route_for_task`` or a dotted path to one, or a list of these (Celery's forms)."""
    if not value:
        return []
    items: Sequence[object] = value if isinstance(value, (list, tuple)) else [value]
    found: list[RouterFunction] = []
    for item in items:
        if isinstance(item, str):
            item = _import(item)
        if isinstance(item, Mapping):
            found.append(MapRouter(item))
        elif hasattr(item, "route_for_task"):
            found.append(_method_router(item))
        elif callable(item):
            found.append(item)
        else:
            raise ConfigError(
                f"task_routes holds {item!r:.60}; a router is a table, a function, an object with route_for_task, "
                f"or the dotted path to one"
            )
    return found


def _method_router(router: object) -> RouterFunction:
    method = cast("RouterFunction", router.route_for_task)  # type: ignore[attr-defined]  # checked by the caller

    def route(name: str, args: object, kwargs: object, options: object, task: object = None) -> object:
        return method(name, args, kwargs)  # Celery calls route_for_task with these three only

    return route


def _import(path: str) -> object:
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"task_routes names the router {path!r}, which cannot be imported: {exc}") from exc


__all__ = ["MapRouter", "RouterFunction", "routers"]

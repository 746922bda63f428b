"""Finding the user's app from ``-A module[:attr]``, as Celery users know it."""

from __future__ import annotations

import importlib
import os
import sys

from taskq.app import App, current_app
from taskq.errors import AppNotFoundError

#: Attribute names tried, in order, when ``-A`` names only a module.
APP_ATTRIBUTES = ("app", "taskq", "celery")
#: Submodules tried when the module itself holds no app.
APP_SUBMODULES = ("taskq", "app", "celery")


def _import(module_name: str) -> object:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppNotFoundError(
                f"cannot import {module_name!r} given with -A: no module named {exc.name!r}. "
                f"Run taskq from the folder that contains it, or add that folder to PYTHONPATH."
            ) from exc
        raise


def find_app(spec: str) -> App:
    """The :class:`App` that ``spec`` (``module``, ``module:attr`` or ``module.attr``) names."""
    module_name, _, attr = spec.partition(":")
    module = _import(module_name)
    if attr:
        obj: object = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise AppNotFoundError(f"module {module_name!r} has no attribute {attr!r} (from -A {spec})") from None
        if callable(obj) and not isinstance(obj, App):
            obj = obj()
        if not isinstance(obj, App):
            raise AppNotFoundError(f"-A {spec} names a {type(obj).__name__}, not a taskq App")
        return obj
    for name in APP_ATTRIBUTES:
        candidate = getattr(module, name, None)
        if isinstance(candidate, App):
            return candidate
    for value in vars(module).values():
        if isinstance(value, App):
            return value
    for sub in APP_SUBMODULES:
        try:
            submodule = importlib.import_module(f"{module_name}.{sub}")
        except ModuleNotFoundError:
            continue
        for name in APP_ATTRIBUTES:
            candidate = getattr(submodule, name, None)
            if isinstance(candidate, App):
                return candidate
    app = current_app()
    if app.tasks:
        # The module declared shared tasks only: they live on the default app.
        return app
    raise AppNotFoundError(
        f"no taskq App found in {module_name!r} given with -A: define one there "
        f"(app = App('proj')) or name it: -A {module_name}:your_app"
    )


__all__ = ["find_app"]

"""taskq-memcached's plugin module: registers the ``cache+memcached://`` result backend.

Cheap to import: neither pymemcache nor the backend loads until a memcached URL selects it.
``memcached://`` is accepted as well as Celery's ``cache+memcached://``.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl

SCHEMES = ("cache+memcached", "memcached")


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    return dict.fromkeys(SCHEMES, "taskq_memcached.backend:MemcachedBackend")

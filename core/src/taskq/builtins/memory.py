"""Built-in plugin: an in-process transport and result backend (``memory://``).

Both live in this process only, shared by every App that names the same URL: for tests,
eager mode and embedding, never for several processes. They implement the whole
contract, leases included, and serve as the reference for plugin authors.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_transports() -> dict[str, str]:
    return {"memory": "taskq.builtins.memory_drivers:MemoryTransport"}


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    return {"memory": "taskq.builtins.memory_drivers:MemoryBackend"}

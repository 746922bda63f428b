"""taskq-amqp's plugin module: the RabbitMQ transport and the ``rpc`` result backend.

Cheap to import: py-amqp and the drivers load only when an ``amqp://`` or ``rpc://`` URL
selects them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq.hookspecs import hookimpl

if TYPE_CHECKING:
    from taskq import App

TRANSPORT = "taskq_amqp.transport:AmqpTransport"
BACKEND = "taskq_amqp.backend:RpcBackend"


@hookimpl
def taskq_register_transports() -> dict[str, str]:
    return {"amqp": TRANSPORT, "amqps": TRANSPORT, "pyamqp": TRANSPORT}


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    return {"rpc": BACKEND}


@hookimpl
def taskq_before_publish(app: App, task_id: str) -> None:
    """With the rpc backend, send the task with ``reply_to`` naming this thread's reply queue.

    A retry sent from inside the task keeps the reply queue of the client that asked.
    """
    url = app.backend_url
    if url is None or not url.startswith("rpc:"):
        return
    from taskq_amqp._connection import REPLIES
    from taskq_amqp.backend import RpcBackend

    running = app.current_worker_task_context()
    if running is not None and running.id == task_id and running.reply_to:
        REPLIES.outgoing[task_id] = running.reply_to
        return
    backend = app.backend
    if isinstance(backend, RpcBackend):
        REPLIES.outgoing[task_id] = backend.reply_queue()

"""A task request: one decoded message in the worker, bound to its registered task."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq._protocol import to_iso
from taskq.task import Context

if TYPE_CHECKING:
    from taskq._protocol import TaskMessage
    from taskq.drivers.transport import Delivery
    from taskq.task import Task


class Request:
    """What the worker knows about one task it holds: the message, the task and timings."""

    __slots__ = (
        "acknowledged",
        "delivery",
        "eta",
        "expires",
        "hostname",
        "message",
        "start_recorded",
        "task",
        "time_start",
    )

    def __init__(
        self,
        delivery: Delivery,
        message: TaskMessage,
        task: Task[..., object],
        hostname: str,
    ) -> None:
        self.delivery = delivery
        self.message = message
        self.task = task
        self.hostname = hostname
        self.eta = message.eta
        self.expires = message.expires
        self.time_start: float | None = None
        self.acknowledged = False
        #: Whether the transport was told this message started (Transport.started).
        self.start_recorded = False

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def name(self) -> str:
        return self.message.name

    @property
    def args(self) -> list[object]:
        return self.message.args

    @property
    def kwargs(self) -> dict[str, object]:
        return self.message.kwargs

    @property
    def retries(self) -> int:
        return self.message.retries

    @property
    def time_limits(self) -> tuple[float | None, float | None]:
        """``(hard, soft)`` seconds: the message's limits, else the task's."""
        hard, soft = self.message.timelimit
        return (
            hard if hard is not None else self.task.time_limit,
            soft if soft is not None else self.task.soft_time_limit,
        )

    @property
    def acks_late(self) -> bool:
        return bool(self.task.acks_late)

    @property
    def argsrepr(self) -> str:
        return self.message.argsrepr or ""

    @property
    def stamps(self) -> dict[str, object]:
        """The message's stamps by name (Celery's ``request.stamps``); empty when it has none."""
        return self.message.stamps or {}

    @property
    def ignore_result(self) -> bool:
        return self.message.ignore_result or bool(self.task.ignore_result)

    def context(self) -> Context:
        """The ``self.request`` a bound task sees while it runs.

        Every value comes from the checked message (:func:`taskq._protocol.decode`): nothing
        here can raise on what a producer sent.
        """
        message = self.message
        headers = message.headers
        eta, expires = headers.get("eta"), headers.get("expires")
        return Context(
            id=message.id,
            task=message.name,
            args=message.args,
            kwargs=message.kwargs,
            retries=message.retries,
            # Celery's request.eta is the header's ISO text; a POSIX time or a date becomes that
            eta=eta if eta is None or type(eta) is str else to_iso(message.eta),
            expires=expires if expires is None or type(expires) is str else to_iso(message.expires),
            is_eager=False,
            headers=headers,
            delivery_info={"queue": self.delivery.queue, "deliveries": self.delivery.deliveries},
            root_id=message.root_id,
            parent_id=message.parent_id,
            group=message.group,
            group_index=message.group_index,
            chord=message.chord,
            chain=message.chain,
            callbacks=message.callbacks,
            errbacks=message.errbacks,
            reply_to=message.reply_to,
            correlation_id=message.correlation_id,
            origin=message.origin,
            hostname=self.hostname,
            timelimit=message.timelimit,
            ignore_result=message.ignore_result,
            called_directly=False,
            deliveries=self.delivery.deliveries,
            stamped_headers=list(message.stamps) if message.stamps else None,
            stamps=message.stamps,
        )

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # Sent to pool processes as the message's parts, by reference to the task, which
        # the child looks up in its own app and decodes again there (a flat tuple pickles
        # in half the time of the decoded objects, and the parent is the busy side).
        delivery = self.delivery
        message = delivery.message
        return (
            _rebuild,
            (
                delivery.queue,
                delivery.tag,
                delivery.deliveries,
                message.body,
                message.headers,
                message.content_type,
                message.content_encoding,
                message.properties,
                self.task.name,
                self.hostname,
            ),
        )

    def __repr__(self) -> str:
        return f"<Request {self.name}[{self.id}]>"


def _rebuild(
    queue: str,
    tag: object,
    deliveries: int,
    body: bytes,
    headers: dict[str, object],
    content_type: str,
    content_encoding: str,
    properties: dict[str, object],
    task_name: str,
    hostname: str,
) -> Request:
    from taskq import _protocol as protocol
    from taskq.app import current_app
    from taskq.drivers.transport import Delivery, Message

    app = current_app()
    message = Message(body, headers, content_type, content_encoding, properties)
    delivery = Delivery(message, queue, tag, deliveries)
    return Request(delivery, protocol.decode(app.serializers, message), app.tasks[task_name], hostname)


__all__ = ["Request"]

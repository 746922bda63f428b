"""What the transport and the rpc backend share: URLs, connecting, message conversion.

Private: nothing outside taskq-amqp imports it.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import amqp
import amqp.exceptions

from taskq.drivers.support.connections import mask_url
from taskq.drivers.transport import Message
from taskq.errors import BrokerUnavailableError, ConfigError
from taskq_amqp._frames import encode_properties
from taskq_amqp._reader import Connection, has_buffered

logger = logging.getLogger(__name__)

# Seconds to wait for the TCP connect and the AMQP handshake.
CONNECT_TIMEOUT = 4.0
# Reconnect back-off: first pause and ceiling, in seconds.
RECONNECT_START = 0.1
RECONNECT_MAX = 2.0
# How long a client-side call (publish, admin, result wait) keeps trying to reconnect
# before it raises BrokerUnavailableError, in seconds. A worker's claim/wait never gives up.
RECONNECT_TIMEOUT = 20.0

SCHEMES = ("amqp", "amqps", "pyamqp", "rpc")
# Headers RabbitMQ adds on its own; they are not part of the message that was sent.
BROKER_HEADERS = frozenset(
    {"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason", "x-delivery-count"}
)
# AMQP basic properties a Message may carry (besides content type, encoding, headers).
AMQP_PROPERTIES = frozenset(
    {
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
    }
)
# Errors after which the connection is gone and must be opened again.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp.exceptions.RecoverableConnectionError,
    amqp.exceptions.ConnectionError,
    ConnectionError,
    OSError,
    EOFError,
)
# What a reconnect may cure.
RECOVERABLE: tuple[type[BaseException], ...] = (BrokerUnavailableError, *CONNECTION_ERRORS)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    """Where and how to connect, read from a URL and its options."""

    host: str
    port: int
    userid: str
    password: str = field(repr=False)
    virtual_host: str
    use_tls: bool
    tls: Mapping[str, object]
    heartbeat: int

    @property
    def masked(self) -> str:
        scheme = "amqps" if self.use_tls else "amqp"
        vhost = "" if self.virtual_host == "/" else self.virtual_host
        return f"{scheme}://{self.userid}:***@{self.host}:{self.port}/{vhost}"


def parse_url(url: str, options: Mapping[str, object]) -> ConnectionParams:
    """``amqp[s]://user:password@host:port/vhost``; an empty vhost is ``/``."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"not an AMQP URL: {mask_url(url)!r}; use amqp://user:password@host:5672/vhost")
    tls_option = options.get("ssl")
    use_tls = parts.scheme == "amqps" or bool(tls_option)
    vhost = unquote(parts.path[1:]) if parts.path and parts.path != "/" else "/"
    tls: dict[str, object] = dict(tls_option) if isinstance(tls_option, Mapping) else {}
    return ConnectionParams(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (5671 if use_tls else 5672),
        userid=unquote(parts.username) if parts.username else "guest",
        password=unquote(parts.password) if parts.password else "guest",
        virtual_host=vhost,
        use_tls=use_tls,
        tls=tls,
        heartbeat=int(options.get("heartbeat", 0)),  # type: ignore[call-overload]  # an int option
    )


def _ssl_options(params: ConnectionParams) -> dict[str, object] | bool:
    """py-amqp's ``ssl`` argument: CA, client certificate, verification (on by default)."""
    opts: dict[str, object] = {"server_hostname": params.host, "cert_reqs": ssl.CERT_REQUIRED}
    for key in ("ca_certs", "certfile", "keyfile", "ciphers"):
        if params.tls.get(key):
            opts[key] = params.tls[key]
    if "cert_reqs" in params.tls:
        opts["cert_reqs"] = params.tls["cert_reqs"]
        if params.tls["cert_reqs"] == ssl.CERT_NONE:
            opts.pop("server_hostname")  # hostname checks need verification
    if "server_hostname" in params.tls:
        opts["server_hostname"] = params.tls["server_hostname"]
    return opts


def open_connection(params: ConnectionParams) -> amqp.Connection:
    """Connect once; raise :class:`BrokerUnavailableError` saying how to check the broker."""
    conn = Connection(
        host=f"{params.host}:{params.port}",
        userid=params.userid,
        password=params.password,
        virtual_host=params.virtual_host,
        ssl=_ssl_options(params) if params.use_tls else False,
        heartbeat=params.heartbeat,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=None,
        write_timeout=None,
        socket_settings={},
    )
    try:
        conn.connect()
    except amqp.exceptions.AccessRefused as exc:
        # Retrying cannot help: a ConfigError, which no retry loop catches, fails at once.
        raise ConfigError(
            f"RabbitMQ at {params.masked} refused the credentials of {params.userid!r} "
            f"({str(exc).replace(params.password, '***') if params.password else exc}); fix the user name and "
            f"password in broker_url. Check them with: rabbitmqctl authenticate_user {params.userid} PASSWORD"
        ) from None
    except CONNECTION_ERRORS as exc:  # socket.timeout is an OSError
        raise BrokerUnavailableError(
            f"cannot reach RabbitMQ at {params.masked} ({exc}); is it running? Start it with: "
            f"rabbitmq-server -detached, check with: rabbitmqctl status"
        ) from exc
    sock = conn.sock
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def readable(conn: amqp.Connection, timeout: float) -> bool:
    """Whether frames wait to be handled, after waiting up to ``timeout`` seconds for some."""
    return has_buffered(conn) or bool(select.select([conn.sock], [], [], timeout)[0])


def new_channel(conn: amqp.Connection) -> amqp.Channel:
    """A channel that hands message bodies over as the bytes that came (no decoding)."""
    channel = conn.channel()
    channel.auto_decode = False
    return channel


def close_quietly(conn: amqp.Connection | None) -> None:
    """Close a connection that may already be broken, without raising."""
    if conn is None:
        return
    with contextlib.suppress(Exception):  # it is going away either way
        if conn.connected:
            conn.close()
    with contextlib.suppress(Exception):
        conn.collect()


class Backoff:
    """Pauses between reconnect attempts: doubling from RECONNECT_START to RECONNECT_MAX."""

    def __init__(self) -> None:
        self.delay = RECONNECT_START

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, RECONNECT_MAX)
        return delay

    def reset(self) -> None:
        self.delay = RECONNECT_START


def sleep_until(deadline: float, pause: float) -> None:
    time.sleep(max(0.0, min(pause, deadline - time.monotonic())))


class WakeSocket:
    """A socket pair that ends a ``select`` on :attr:`reader` from another thread or a signal handler."""

    def __init__(self) -> None:
        self.reader, self._writer = self._pair()

    @staticmethod
    def _pair() -> tuple[socket.socket, socket.socket]:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        return reader, writer

    def reopen(self) -> None:
        """After :meth:`close`, for an instance used again."""
        if self.reader.fileno() == -1:
            self.reader, self._writer = self._pair()

    def poke(self) -> None:
        with contextlib.suppress(OSError):  # full: poked already; closed: nobody waits
            self._writer.send(b"!")

    def drain(self) -> bool:
        """Swallow pending pokes; say whether there were any."""
        woken = False
        with contextlib.suppress(OSError):
            while self.reader.recv(64):
                woken = True
        return woken

    def sleep(self, seconds: float) -> bool:
        """Sleep unless poked; True when poked."""
        if select.select([self.reader], [], [], seconds)[0]:
            self.drain()
            return True
        return False

    def close(self) -> None:
        self.reader.close()
        self._writer.close()


class Reconnecting(ABC):
    """A connection's user (the transport, the rpc backend): operations retried across reconnects."""

    params: ConnectionParams
    #: How long a call keeps trying to reconnect before it raises, in seconds.
    reconnect_timeout: float = RECONNECT_TIMEOUT

    @abstractmethod
    def _ensure(self) -> amqp.Channel:
        """The channel, connecting first if need be; raises BrokerUnavailableError."""

    @abstractmethod
    def _lost(self, exc: BaseException) -> None:
        """Forget a broken connection; the next call opens a new one."""

    def _retrying(self, what: str, operation: Callable[[amqp.Channel], T], deadline: float | None = None) -> T:
        """Run ``operation`` on the channel, reconnecting until ``deadline`` (monotonic; by default
        :attr:`reconnect_timeout` from now), then :class:`BrokerUnavailableError`."""
        started = time.monotonic()
        deadline = started + self.reconnect_timeout if deadline is None else deadline
        backoff = Backoff()
        while True:
            try:
                return operation(self._ensure())
            except amqp.exceptions.PreconditionFailed as exc:
                self._lost(exc)
                raise ConfigError(
                    f"RabbitMQ refused to {what}: {exc.reply_text}. A queue of that name exists with other "
                    f"arguments (priority, queue type): delete it or set the same transport options"
                ) from exc
            except RECOVERABLE as exc:
                self._lost(exc)
                if time.monotonic() >= deadline:
                    raise BrokerUnavailableError(
                        f"cannot {what}: RabbitMQ at {self.params.masked} is unreachable after "
                        f"{time.monotonic() - started:.0f}s ({exc}); is it running? Check with: rabbitmqctl status"
                    ) from exc
                pause = backoff.next()
                logger.warning("cannot %s on %s (%s); retrying in %.1fs", what, self.params.masked, exc, pause)
                sleep_until(deadline, pause)


# ---- Message conversion ------------------------------------------------------------


def encode_message(message: Message, headers: Mapping[str, object] | None = None, reply_to: str | None = None) -> bytes:
    """The content header properties of a taskq :class:`Message`, encoded for the wire.

    ``headers`` are added to the message's own; ``reply_to`` is used when it has none.
    """
    props: dict[str, object] = {k: v for k, v in message.properties.items() if k in AMQP_PROPERTIES}
    if reply_to and not props.get("reply_to"):
        props["reply_to"] = reply_to
    props["content_type"] = message.content_type
    props["content_encoding"] = message.content_encoding
    props["application_headers"] = {**message.headers, **headers} if headers else message.headers
    return encode_properties(props)


def from_amqp(raw: amqp.Message) -> tuple[Message, dict[str, object]]:
    """A delivered py-amqp message as a taskq :class:`Message`, plus the broker's headers."""
    props: dict[str, Any] = raw.properties
    headers = dict(props.get("application_headers") or {})
    extra = {key: headers.pop(key) for key in BROKER_HEADERS.intersection(headers)}
    body = raw.body
    if isinstance(body, str):  # py-amqp gives bytes; be safe with old versions
        body = body.encode(props.get("content_encoding") or "utf-8")
    message = Message(
        body=bytes(body),
        headers=headers,
        content_type=props.get("content_type") or "application/json",
        content_encoding=props.get("content_encoding") or "utf-8",
        properties={k: v for k, v in props.items() if k in AMQP_PROPERTIES},
    )
    return message, extra


# ---- Where results go: task id -> (reply_to, correlation_id) -------------------------

# Most reply addresses remembered per process.
REPLY_ADDRESSES_MAX = 65_536


class ReplyAddresses:
    """Reply queues of tasks this process claimed or is sending, for the rpc backend.

    The worker stores results in places where it has no request at hand (a rejected or
    revoked message); the transport notes each claimed task's ``reply_to`` here so that
    the rpc backend can still route the result. The client side notes the reply queue
    to put on the messages it publishes.
    """

    def __init__(self) -> None:
        self._by_task: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.local = threading.local()

    def remember(self, task_id: str, reply_to: str, correlation_id: str) -> None:
        with self._lock:
            self._by_task[task_id] = (reply_to, correlation_id)
            if len(self._by_task) > REPLY_ADDRESSES_MAX:
                self._by_task.popitem(last=False)

    def lookup(self, task_id: str) -> tuple[str, str] | None:
        with self._lock:
            return self._by_task.get(task_id)

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._by_task.pop(task_id, None)

    @property
    def outgoing(self) -> dict[str, str]:
        """Task id -> reply queue to set on the next publish of that task, this thread."""
        table: dict[str, str] | None = getattr(self.local, "outgoing", None)
        if table is None:
            table = self.local.outgoing = {}
        return table


REPLIES = ReplyAddresses()

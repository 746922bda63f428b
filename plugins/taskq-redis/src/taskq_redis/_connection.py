"""Redis clients from taskq URLs: ``redis://``, ``rediss://`` (TLS), ``sentinel://`` and sockets.

URLs are read as Celery and kombu read them, so one configuration serves both:

* ``redis://:password@host:6379/0`` and ``rediss://...`` (TLS; ``?ssl_cert_reqs=required``
  and friends in the query, or an ``ssl`` mapping in the options);
* ``sentinel://:password@host1:26379/0;sentinel://host2:26379`` with the option
  ``master_name`` (and ``sentinel_kwargs`` for the Sentinels' own password or TLS);
* ``redis+socket:///run/redis.sock?virtual_host=0`` or ``unix:///run/redis.sock``.

Options shared by the transport and the backend: ``global_keyprefix`` (kombu's: prepended
to every key), ``socket_timeout``, ``socket_connect_timeout``, ``retries`` (attempts after
a lost connection, with exponential backoff), ``health_check_interval``, ``ssl``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from taskq.errors import ConfigError
from taskq.utils import mask_url

# Seconds to wait for a reply to an ordinary command before the connection counts as lost.
SOCKET_TIMEOUT = 30.0
# Seconds to wait for a TCP (and TLS) connection.
CONNECT_TIMEOUT = 5.0
# Attempts after a lost connection, and the backoff between them (seconds: base, ceiling).
RETRIES = 3
BACKOFF_BASE = 0.05
BACKOFF_CAP = 1.0
# Seconds of idleness after which a pooled connection is checked with PING before use.
HEALTH_CHECK_INTERVAL = 15

#: What redis-py raises when the server cannot be reached or stops answering.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, ConnectionError)

_SSL_KEYS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname", "ssl_ca_data")


@dataclass(slots=True)
class Endpoint:
    """A client and what the drivers need to know about where it points."""

    client: redis.Redis
    db: int
    prefix: str
    masked_url: str


def connect(url: str, options: Mapping[str, object], *, retries: int | None = None) -> Endpoint:
    """A redis-py client for ``url``; connections open lazily, on the first command."""
    common = _common_kwargs(options, retries)
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sentinel":
        client, db = _sentinel_client(url, options, common)
    elif scheme in ("redis", "rediss"):
        client, db = _url_client(url, options, common)
    elif scheme in ("redis+socket", "unix", "socket"):
        client, db = _socket_client(url, common)
    else:
        raise ConfigError(f"taskq-redis cannot open {mask_url(url)!r}: use redis://, rediss://, sentinel:// or unix://")
    prefix = str(options.get("global_keyprefix") or "")
    return Endpoint(client, db, prefix, mask_url(url))


def unreachable(endpoint: Endpoint, exc: BaseException) -> str:
    """The advice for a server that does not answer."""
    return (
        f"cannot reach Redis at {endpoint.masked_url} ({exc}); is it running? "
        f"Check with: redis-cli -u {endpoint.masked_url} ping"
    )


def _common_kwargs(options: Mapping[str, object], retries: int | None) -> dict[str, object]:
    attempts = int(options.get("retries", RETRIES if retries is None else retries))  # type: ignore[call-overload]  # an int option
    return {
        "socket_timeout": float(options.get("socket_timeout", SOCKET_TIMEOUT)),  # type: ignore[arg-type]  # a float option
        "socket_connect_timeout": float(options.get("socket_connect_timeout", CONNECT_TIMEOUT)),  # type: ignore[arg-type]  # idem
        "socket_keepalive": True,
        "health_check_interval": int(options.get("health_check_interval", HEALTH_CHECK_INTERVAL)),  # type: ignore[call-overload]  # an int option
        "retry": Retry(ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE), attempts),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError, ConnectionError],
    }


def _ssl_kwargs(options: Mapping[str, object]) -> dict[str, object]:
    ssl = options.get("ssl")
    if not isinstance(ssl, Mapping):
        return {}
    return {key: ssl[key] for key in _SSL_KEYS if key in ssl}


def _url_client(url: str, options: Mapping[str, object], common: dict[str, object]) -> tuple[redis.Redis, int]:
    kwargs = dict(common)
    if url.lower().startswith("rediss://"):
        kwargs.update(_ssl_kwargs(options))
    client = redis.Redis.from_url(url, **kwargs)
    db = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
    return client, db


def _socket_client(url: str, common: dict[str, object]) -> tuple[redis.Redis, int]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    db = int(query.get("virtual_host") or query.get("db") or 0)
    client = redis.Redis(unix_socket_path=unquote(parts.path), db=db, password=parts.password, **common)  # type: ignore[arg-type]  # mixed kwargs
    return client, db


def _sentinel_client(url: str, options: Mapping[str, object], common: dict[str, object]) -> tuple[redis.Redis, int]:
    from redis.sentinel import Sentinel

    master = options.get("master_name")
    if not master:
        raise ConfigError(
            f"the sentinel URL {mask_url(url)!r} needs the master's name: set "
            f'broker_transport_options = {{master_name = "mymaster"}} (result_backend_transport_options '
            f"for the result backend)"
        )
    hosts: list[tuple[str, int]] = []
    password: str | None = None
    username: str | None = None
    db = 0
    for part in url.split(";"):
        part = part.strip()
        if not part:
            continue
        parsed = urlsplit(part)
        hosts.append((parsed.hostname or "127.0.0.1", parsed.port or 26379))
        password = parsed.password or password
        username = parsed.username or username
        path = parsed.path.strip("/")
        if path.isdigit():
            db = int(path)
    sentinel_kwargs = options.get("sentinel_kwargs")
    kwargs = dict(common)
    if password:
        kwargs["password"] = unquote(password)
    if username:
        kwargs["username"] = unquote(username)
    # a Sentinel that is down is skipped at once for the next one, not retried
    asked: dict[str, object] = {
        "socket_timeout": common["socket_timeout"],
        "socket_connect_timeout": common["socket_connect_timeout"],
        "retry": Retry(NoBackoff(), 0),
    }
    if isinstance(sentinel_kwargs, Mapping):
        asked.update(sentinel_kwargs)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # unannotated in redis-py
        hosts,
        sentinel_kwargs=asked,
        socket_timeout=common["socket_timeout"],
        socket_connect_timeout=common["socket_connect_timeout"],
    )
    kwargs.update(_ssl_kwargs(options))
    if kwargs.keys() & set(_SSL_KEYS):
        kwargs["ssl"] = True
    client: redis.Redis = sentinel.master_for(str(master), redis_class=redis.Redis, db=db, **kwargs)  # type: ignore[no-untyped-call]  # idem
    return client, db

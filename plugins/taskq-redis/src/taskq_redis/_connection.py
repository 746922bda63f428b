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
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from taskq.drivers.support.connections import mask_url
from taskq.errors import ConfigError
from taskq_redis._resp import Client, RedisConnectionError

if TYPE_CHECKING:
    import ssl

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

#: What is raised when the server cannot be reached or stops answering (socket errors,
#: timeouts and TLS failures are all ``OSError``s).
CONNECTION_ERRORS: tuple[type[Exception], ...] = (OSError,)

_SSL_KEYS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname", "ssl_ca_data")


@dataclass(slots=True)
class Endpoint:
    """A client and what the drivers need to know about where it points."""

    client: Client
    db: int
    prefix: str
    masked_url: str


def connect(
    url: str, options: Mapping[str, object], *, retries: int | None = None, setting: str = "the Redis URL"
) -> Endpoint:
    """A client for ``url``; connections open lazily, on the first command.

    ``setting`` names where ``url`` came from (``broker_url``, ``result_backend``), for the
    error that a refused password raises: it fails at once, never retried.
    """
    common = _common_kwargs(options, retries)
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sentinel":
        client = _sentinel_client(url, options, common)
    elif scheme in ("redis", "rediss"):
        client = _url_client(url, options, common)
    elif scheme in ("redis+socket", "unix", "socket"):
        client = _socket_client(url, common)
    else:
        raise ConfigError(f"taskq-redis cannot open {mask_url(url)!r}: use redis://, rediss://, sentinel:// or unix://")
    prefix = str(options.get("global_keyprefix") or "")
    client.masked_url, client.setting = mask_url(url), setting
    return Endpoint(client, client.db, prefix, mask_url(url))


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
        "connect_timeout": float(options.get("socket_connect_timeout", CONNECT_TIMEOUT)),  # type: ignore[arg-type]  # idem
        "health_check_interval": float(options.get("health_check_interval", HEALTH_CHECK_INTERVAL)),  # type: ignore[arg-type]  # idem
        "retries": attempts,
    }


def _ssl_settings(options: Mapping[str, object], query: Mapping[str, str]) -> dict[str, object]:
    settings: dict[str, object] = {key: query[key] for key in _SSL_KEYS if key in query}
    ssl_options = options.get("ssl")
    if isinstance(ssl_options, Mapping):
        settings.update({key: ssl_options[key] for key in _SSL_KEYS if key in ssl_options})
    return settings


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def ssl_context(settings: Mapping[str, object]) -> ssl.SSLContext:
    """A TLS context from redis-py's ``ssl_*`` settings (verified, as redis-py does by default)."""
    import ssl  # only for rediss://: it costs every other worker ~4 ms of start-up

    cert_reqs = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
    reqs = settings.get("ssl_cert_reqs", "required")
    if reqs is None:
        verify = ssl.CERT_NONE
    elif isinstance(reqs, str):
        if reqs.lower() not in cert_reqs:
            raise ConfigError(f"ssl_cert_reqs must be one of none, optional, required, not {reqs!r}")
        verify = cert_reqs[reqs.lower()]
    else:
        verify = ssl.VerifyMode(reqs)  # type: ignore[arg-type]  # an ssl.CERT_* constant
    context = ssl.create_default_context()
    context.check_hostname = _flag(settings.get("ssl_check_hostname", True)) and verify != ssl.CERT_NONE
    context.verify_mode = verify
    ca_certs, ca_data = settings.get("ssl_ca_certs"), settings.get("ssl_ca_data")
    if ca_certs or ca_data:
        context.load_verify_locations(
            cafile=str(ca_certs) if ca_certs else None, cadata=str(ca_data) if ca_data else None
        )
    certfile = settings.get("ssl_certfile")
    if certfile:
        keyfile = settings.get("ssl_keyfile")
        context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    return context


def _url_client(url: str, options: Mapping[str, object], common: dict[str, object]) -> Client:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    path = parts.path.strip("/")
    db = int(query.get("db") or (path if path.isdigit() else 0))
    context = ssl_context(_ssl_settings(options, query)) if parts.scheme.lower() == "rediss" else None
    password = query.get("password") or (unquote(parts.password) if parts.password else None)
    username = unquote(parts.username) if parts.username else None
    return Client(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=db,
        username=username,
        password=password,
        ssl_context=context,
        **common,  # type: ignore[arg-type]  # mixed kwargs
    )


def _socket_client(url: str, common: dict[str, object]) -> Client:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    db = int(query.get("virtual_host") or query.get("db") or 0)
    password = unquote(parts.password) if parts.password else None
    return Client(unix_path=unquote(parts.path), db=db, password=password, **common)  # type: ignore[arg-type]  # mixed kwargs


def _sentinel_client(url: str, options: Mapping[str, object], common: dict[str, object]) -> Client:
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
    settings = _ssl_settings(options, {})
    context = ssl_context(settings) if settings else None
    found: list[object] = []

    def resolve() -> tuple[str, int]:
        """The master's address, asked of the Sentinels (redis-py, imported on first use)."""
        if not found:
            from redis.backoff import NoBackoff
            from redis.retry import Retry
            from redis.sentinel import Sentinel

            # a Sentinel that is down is skipped at once for the next one, not retried
            asked: dict[str, object] = {
                "socket_timeout": common["socket_timeout"],
                "socket_connect_timeout": common["connect_timeout"],
                "retry": Retry(NoBackoff(), 0),
            }
            if isinstance(sentinel_kwargs, Mapping):
                asked.update(sentinel_kwargs)
            found.append(
                Sentinel(
                    hosts,
                    sentinel_kwargs=asked,
                    socket_timeout=common["socket_timeout"],
                    socket_connect_timeout=common["connect_timeout"],
                )
            )
        import redis

        try:
            host, port = found[0].discover_master(str(master))  # type: ignore[attr-defined]  # a redis-py Sentinel
        except redis.RedisError as exc:
            raise RedisConnectionError(f"no Sentinel knows the master {master!r}: {exc}") from exc
        return str(host), int(port)

    return Client(
        resolve=resolve,
        db=db,
        username=unquote(username) if username else None,
        password=unquote(password) if password else None,
        ssl_context=context,
        **common,  # type: ignore[arg-type]  # mixed kwargs
    )

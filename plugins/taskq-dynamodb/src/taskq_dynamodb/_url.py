"""Reading a ``dynamodb://`` URL the way Celery writes it, into boto3 client settings."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from taskq.drivers.support.connections import mask_url
from taskq.errors import ConfigError

# Region used for a local endpoint when neither the options nor the environment name one.
LOCAL_REGION = "us-east-1"
DEFAULT_TABLE = "celery"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything needed to reach one table."""

    table: str
    region: str | None  # None: boto3's default chain (AWS_REGION, ~/.aws/config)
    endpoint_url: str | None  # None: the AWS endpoint of the region
    access_key: str | None = field(repr=False)  # None: boto3's default credential chain
    secret_key: str | None = field(repr=False)
    read_capacity: int | None  # None with write_capacity None: on-demand billing
    write_capacity: int | None


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _capacity(query: dict[str, list[str]], name: str, shown: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    try:
        value = int(values[-1])
    except ValueError:
        raise ConfigError(f"{name}={values[-1]!r} in {shown} is not a whole number of capacity units") from None
    if value < 1:
        raise ConfigError(f"{name}={value} in {shown}: capacity units start at 1")
    return value


def parse_url(url: str, options: Mapping[str, object]) -> Settings:
    """Settings from ``dynamodb://key:secret@region:port/table?read=n&write=m`` and ``options``.

    A host of ``localhost`` or an IP address means a local endpoint (DynamoDB Local,
    moto) at ``http://host:port``; any other host is the AWS region. The options
    ``endpoint_url``, ``region``, ``aws_access_key_id`` and ``aws_secret_access_key``
    (``result_backend_transport_options``) win over the URL.
    """
    shown = mask_url(url)  # errors name the URL without its access key and secret
    parts = urlsplit(url)
    if parts.scheme != "dynamodb":
        raise ConfigError(f"not a dynamodb:// URL: {shown!r}")
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"the port in {shown!r} is not a number") from None
    region: str | None = None
    endpoint: str | None = None
    if host and _is_local(host):
        shown = f"[{host}]" if ":" in host else host
        endpoint = f"http://{shown}:{port or 8000}"
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or LOCAL_REGION
    elif host:
        region = host
    table = unquote(parts.path.lstrip("/")) or DEFAULT_TABLE
    query = parse_qs(parts.query)
    read = _capacity(query, "read", shown)
    write = _capacity(query, "write", shown)
    if (read is None) != (write is None):
        raise ConfigError(f"{shown}: give both read= and write= capacity units, or neither for on-demand billing")
    access_key = unquote(parts.username) if parts.username else None
    secret_key = unquote(parts.password) if parts.password else None
    return Settings(
        table=str(options.get("table") or table),
        region=str(options["region"]) if options.get("region") else region,
        endpoint_url=str(options["endpoint_url"]) if options.get("endpoint_url") else endpoint,
        access_key=str(options["aws_access_key_id"]) if options.get("aws_access_key_id") else access_key,
        secret_key=str(options["aws_secret_access_key"]) if options.get("aws_secret_access_key") else secret_key,
        read_capacity=read,
        write_capacity=write,
    )


__all__ = ["Settings", "parse_url"]

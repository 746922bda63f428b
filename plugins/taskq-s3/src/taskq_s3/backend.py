"""The S3 result backend: one object per result under a prefix of one bucket.

``result_backend = "s3://bucket/prefix"``; endpoint, region and credentials come from
``result_backend_transport_options`` (``endpoint_url``, ``region``,
``aws_access_key_id``, ``aws_secret_access_key``) or boto3's usual chain (``AWS_*``
environment variables, ``~/.aws``, an instance role). Keys are Celery's
(``<prefix>/celery-task-meta-<id>``), as Celery's S3 backend writes them.

Expiry: an expiring object carries ``x-amz-meta-taskq-expires-at`` (epoch seconds);
reads ignore it once past, and :meth:`S3Backend.delete_expired` (run in the background
every :data:`CLEANUP_INTERVAL` seconds by an instance that writes) lists the prefix and
deletes what has expired. On AWS a lifecycle rule on the prefix does the same for free.

Chord counters: S3 has no atomic increment. A counter is read with its ETag and written
back with ``If-Match`` (``If-None-Match: *`` for a new one); a write that lost a race
gets 412 PreconditionFailed (or 409 ConditionalRequestConflict) and is tried again.
Stores without conditional writes are detected at start (a probe object written twice
with ``If-None-Match: *`` must be refused the second time); the backend then declares
``chord_counter=False`` and :meth:`S3Backend.incr` says which backends to use instead.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from taskq.drivers.backend import BackendCapabilities, KeyValueBackend
from taskq.drivers.support.connections import PerProcess, mask_url
from taskq.drivers.support.services import ServiceErrors, error_code
from taskq.errors import BackendUnavailableError, ConfigError, SerializationError

logger = logging.getLogger(__name__)

# The largest object one PUT may write, in bytes (5 GiB).
MAX_OBJECT_BYTES = 5 * 1024**3
# Attempts botocore makes per call on throttling and lost connections (standard mode: backoff with jitter).
MAX_ATTEMPTS = 6
# Seconds to wait for a TCP connection, and for an answer.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
# Seconds between two background sweeps of expired objects by one instance (0: never).
CLEANUP_INTERVAL = 300.0
# Seconds an increment keeps retrying lost races before giving up; first pause, in seconds.
CONTENTION_TIMEOUT = 30.0
CONTENTION_PAUSE = 0.002
# Threads reading objects at once for mget (S3 has no multi-object read).
MGET_THREADS = 16
# S3's DeleteObjects takes at most this many keys per call.
DELETE_BATCH = 1000

EXPIRES_META = "taskq-expires-at"
_LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_TRANSIENT_CODES = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "503", "500"})
_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"})


def parse_url(url: str) -> tuple[str, str]:
    """``(bucket, prefix)`` from ``s3://bucket/prefix``; the prefix ends in ``/`` unless empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.hostname:
        raise ConfigError(
            f"not an s3://bucket/prefix URL: {mask_url(url)!r}; write result_backend = 's3://my-bucket/results'"
        )
    prefix = unquote(parts.path).strip("/")
    return parts.netloc.rsplit("@", 1)[-1], f"{prefix}/" if prefix else ""


def _option(options: Mapping[str, object], name: str) -> str | None:
    value = options.get(name)
    return str(value) if value not in (None, "") else None


def _is_true(value: object) -> bool:
    return str(value).strip().lower() not in {"0", "false", "no", "off"}


class S3Backend(KeyValueBackend):
    """Result backend on an S3 bucket (AWS, or any S3-compatible store)."""

    capabilities = BackendCapabilities(push_wait=False, native_join=False, chord_counter=True, expiry=True)

    @property
    def client(self) -> Any:
        """This process's boto3 S3 client."""
        return self._clients.get()

    def setup(self) -> None:
        self.bucket, self.prefix = parse_url(self.url)
        self.masked_url = mask_url(self.url)
        self.endpoint_url = _option(self.options, "endpoint_url")
        self.cleanup_interval = float(str(self.options.get("cleanup_interval", CLEANUP_INTERVAL)))
        self._lock = threading.Lock()
        self._closed = False
        self._next_cleanup = time.monotonic() + self.cleanup_interval
        self._cleaning = False
        # made on first use in each process: a forked child has none of the parent's threads
        self._readers = PerProcess(lambda: ThreadPoolExecutor(MGET_THREADS, thread_name_prefix="taskq-s3-mget"))
        self._counter_locks: dict[str, threading.Lock] = {}
        config = Config(
            connect_timeout=float(str(self.options.get("connect_timeout", CONNECT_TIMEOUT))),
            read_timeout=float(str(self.options.get("read_timeout", READ_TIMEOUT))),
            retries={"mode": "standard", "max_attempts": int(str(self.options.get("max_attempts", MAX_ATTEMPTS)))},
            max_pool_connections=MGET_THREADS + 4,
        )
        session = boto3.session.Session(
            aws_access_key_id=_option(self.options, "aws_access_key_id"),
            aws_secret_access_key=_option(self.options, "aws_secret_access_key"),
            aws_session_token=_option(self.options, "aws_session_token"),
            region_name=_option(self.options, "region"),
        )
        try:  # one client per process: a forked child must not share the parent's pooled connections
            self._clients = PerProcess(lambda: session.client("s3", endpoint_url=self.endpoint_url, config=config))
            self._clients.get()
        except BotoCoreError as exc:
            raise ConfigError(f"cannot set up S3 for {self.masked_url}: {exc}") from exc
        self._call = self._errors().call
        self._check_bucket(create=_is_true(self.options.get("create_bucket", False)))
        wanted = str(self.options.get("conditional_writes", "auto")).lower()
        has_counter = self._probe_conditional_writes() if wanted == "auto" else _is_true(wanted)
        if not has_counter:
            # This store (not S3 as such) cannot do a chord counter: say so truthfully.
            self.capabilities = dataclasses.replace(self.capabilities, chord_counter=False)  # decided by the store

    # ---- Connection and bucket ------------------------------------------------------

    def _errors(self) -> ServiceErrors:
        """What the service's failures mean, and what to check then."""
        if self.endpoint_url:
            advice = (
                f"is the S3 endpoint {self.endpoint_url} running? (endpoint_url in result_backend_transport_options)"
            )
        else:
            advice = (
                f"check your network, the region and the AWS credentials (aws sts get-caller-identity; "
                f"aws s3 ls s3://{self.bucket}/{self.prefix})"
            )
        return ServiceErrors(
            (BotoCoreError, ClientError),
            transient_codes=_TRANSIENT_CODES,
            denied_codes=_DENIED,
            where=f"the S3 result backend at {self.masked_url}",
            advice=advice,
            denied_advice=(
                f"check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the role) and the bucket "
                f"policy: taskq needs s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on {self.bucket}"
            ),
        )

    def _check_bucket(self, *, create: bool) -> None:
        try:
            self._call("looking up the bucket", self.client.head_bucket, Bucket=self.bucket)
            return
        except ClientError as exc:
            if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        if not create:
            raise BackendUnavailableError(
                f"the bucket {self.bucket!r} of {self.masked_url} does not exist; create it "
                f"(aws s3 mb s3://{self.bucket}) or set create_bucket = true in result_backend_transport_options"
            )
        try:
            self._call("creating the bucket", self.client.create_bucket, Bucket=self.bucket)
            logger.info("created S3 bucket %s", self.bucket)
        except ClientError as exc:
            if error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    def _probe_conditional_writes(self) -> bool:
        """Whether the store refuses a second ``If-None-Match: *`` write of one key."""
        key = f"{self.prefix}taskq-probe-{uuid.uuid4().hex}"
        try:
            self._call("probing conditional writes", self.client.put_object, Bucket=self.bucket, Key=key, Body=b"")
            try:
                self._call(
                    "probing conditional writes",
                    self.client.put_object,
                    Bucket=self.bucket,
                    Key=key,
                    Body=b"",
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if error_code(exc) in _LOST_RACE:
                    return True
                logger.warning("S3 store at %s rejects conditional writes (%s): no chord counter", self.masked_url, exc)
                return False
            logger.warning("S3 store at %s ignores conditional writes: no chord counter", self.masked_url)
            return False
        finally:
            self._call("probing conditional writes", self.client.delete_object, Bucket=self.bucket, Key=key)

    # ---- Storage primitives -----------------------------------------------------------

    def object_key(self, key: str) -> str:
        return self.prefix + key

    def _read(self, key: str) -> tuple[bytes, str] | None:
        """The live object's body and ETag, or None when missing or expired."""
        try:
            answer = self._call(
                "reading a result", self.client.get_object, Bucket=self.bucket, Key=self.object_key(key)
            )
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return None
            raise
        body: bytes = answer["Body"].read()
        at = answer.get("Metadata", {}).get(EXPIRES_META)
        if at is not None and float(at) <= time.time():
            return None
        return body, str(answer["ETag"])

    def _read_with_etag(self, key: str) -> tuple[bytes | None, str | None]:
        """For counters: the live value (None when missing or expired) and the ETag of what is there."""
        try:
            answer = self._call(
                "reading a counter", self.client.get_object, Bucket=self.bucket, Key=self.object_key(key)
            )
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return None, None
            raise
        body: bytes = answer["Body"].read()
        at = answer.get("Metadata", {}).get(EXPIRES_META)
        live = at is None or float(at) > time.time()
        return (body if live else None), str(answer["ETag"])

    def get(self, key: str) -> bytes | None:
        found = self._read(key)
        return None if found is None else found[0]

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if len(keys) <= 1:
            return [self.get(key) for key in keys]
        return list(self._readers.get().map(self.get, keys))

    def _metadata(self, expires: float | None) -> dict[str, str]:
        return {} if expires is None else {EXPIRES_META: repr(time.time() + expires)}

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        if len(value) > MAX_OBJECT_BYTES:
            raise SerializationError(
                f"the record for {key} is {len(value):,} bytes encoded; one S3 PUT writes at most "
                f"{MAX_OBJECT_BYTES:,} bytes, so it was not stored. Return a reference to the data instead"
            )
        self._call(
            "storing a result",
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.object_key(key),
            Body=value,
            Metadata=self._metadata(expires),
        )
        if expires is not None:
            self._maybe_clean_up()

    def delete(self, key: str) -> None:
        self._call("deleting a result", self.client.delete_object, Bucket=self.bucket, Key=self.object_key(key))

    def incr(self, key: str, *, expires: float | None = None) -> int:
        if not self.capabilities.chord_counter:
            raise NotImplementedError(
                f"the S3 store at {self.masked_url} does not support conditional writes (If-Match / "
                f"If-None-Match), so S3Backend has no atomic counter for chords or revocations; use a "
                f"result backend that has one (redis, dynamodb, sqlite, database), or an S3 store with "
                f"conditional writes (AWS S3 has them since 2024)"
            )
        # Threads of one process take turns per key: they would only make each other
        # retry. Across processes the conditional write alone keeps the count exact.
        with self._lock:
            key_lock = self._counter_locks.setdefault(key, threading.Lock())
        with key_lock:
            return self._incr_conditionally(key, expires)

    def _incr_conditionally(self, key: str, expires: float | None) -> int:
        deadline = time.monotonic() + CONTENTION_TIMEOUT
        pause = CONTENTION_PAUSE
        while True:
            value, etag = self._read_with_etag(key)
            count = (int(value) if value else 0) + 1
            condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
            try:
                self._call(
                    "counting",
                    self.client.put_object,
                    Bucket=self.bucket,
                    Key=self.object_key(key),
                    Body=str(count).encode("ascii"),
                    Metadata=self._metadata(expires),
                    **condition,
                )
                return count
            except ClientError as exc:
                if error_code(exc) not in _LOST_RACE:
                    raise
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"could not increment {key} at {self.masked_url}: lost every race for "
                    f"{CONTENTION_TIMEOUT:.0f}s; too many writers on one counter for S3's conditional writes"
                )
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.1)

    # ---- Clean-up of expired objects ----------------------------------------------------

    def _maybe_clean_up(self) -> None:
        if self.cleanup_interval <= 0:
            return
        with self._lock:
            if self._cleaning or self._closed or time.monotonic() < self._next_cleanup:
                return
            self._cleaning = True
            self._next_cleanup = time.monotonic() + self.cleanup_interval
        threading.Thread(target=self._clean_up_in_background, name="taskq-s3-cleanup", daemon=True).start()

    def _clean_up_in_background(self) -> None:
        try:
            removed = self.delete_expired()
            if removed:
                logger.info("deleted %d expired results from %s", removed, self.masked_url)
        except Exception as exc:  # a failed sweep is tried again at the next interval
            logger.warning("could not delete expired results from %s: %s", self.masked_url, exc)
        finally:
            with self._lock:
                self._cleaning = False

    def delete_expired(self) -> int:
        """List the prefix and delete every object past its expiry; return how many."""
        now = time.time()
        expired: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call("listing results", paginator.paginate, Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for entry in page.get("Contents", []):
                try:
                    head = self._call("reading metadata", self.client.head_object, Bucket=self.bucket, Key=entry["Key"])
                except ClientError as exc:
                    if error_code(exc) in _MISSING:
                        continue
                    raise
                at = head.get("Metadata", {}).get(EXPIRES_META)
                if at is not None and float(at) <= now:
                    expired.append(entry["Key"])
        for start in range(0, len(expired), DELETE_BATCH):
            batch = [{"Key": key} for key in expired[start : start + DELETE_BATCH]]
            self._call(
                "deleting expired results",
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
        return len(expired)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._readers.close(lambda readers: readers.shutdown(wait=True))
        self._clients.close(lambda client: client.close())


__all__ = ["S3Backend", "parse_url"]

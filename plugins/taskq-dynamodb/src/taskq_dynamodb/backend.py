"""The DynamoDB result backend: results, groups and chord counters in one table.

``result_backend = "dynamodb://@us-east-1/taskq-results"`` (credentials from the
environment) or ``"dynamodb://@localhost:8000/taskq-results"`` (a local endpoint). One
item per key, laid out as Celery's DynamoDB backend lays it out: ``id`` (the hash key),
``result`` (the encoded record, binary) and ``timestamp``; an expiring item also has
``ttl`` (epoch seconds, the table's TTL attribute) and ``expires_at`` (the exact expiry,
fractional seconds). DynamoDB deletes expired items lazily (up to days later), so reads
ignore items past ``expires_at`` themselves.

A counter is an item whose ``counter`` attribute grows by ``UpdateExpression ADD``,
atomic on the server; an expired counter starts again from 1. ``mget`` is BatchGetItem
in chunks of 100 with UnprocessedKeys retried. Every read is strongly consistent.
"""

from __future__ import annotations

import decimal
import logging
import math
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from taskq.drivers.backend import BackendCapabilities, KeyValueBackend
from taskq.drivers.support.connections import PerProcess, mask_url
from taskq.drivers.support.services import ServiceErrors, error_code
from taskq.errors import BackendUnavailableError, ConfigError, SerializationError
from taskq_dynamodb._url import Settings, parse_url

logger = logging.getLogger(__name__)

# DynamoDB's item size limit, in bytes (attribute names and values together).
MAX_ITEM_BYTES = 400 * 1024
# Bytes kept free in an item for the key, the other attributes and their names.
ITEM_OVERHEAD = 1024
# BatchGetItem takes at most this many keys per call.
BATCH_SIZE = 100
# Attempts botocore makes per call on throttling and lost connections (standard mode: backoff with jitter).
MAX_ATTEMPTS = 6
# Seconds to wait for a TCP connection, and for an answer.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
# Rounds of retrying UnprocessedKeys, and the first pause between them, in seconds.
UNPROCESSED_ROUNDS = 8
UNPROCESSED_PAUSE = 0.05
# Seconds to wait for a new table to become ACTIVE.
TABLE_ACTIVE_TIMEOUT = 60.0

KEY = "id"
VALUE = "result"
COUNTER = "counter"
TIMESTAMP = "timestamp"
TTL = "ttl"
EXPIRES_AT = "expires_at"

# Service errors that mean the server is overloaded or away rather than the request wrong.
_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
# Service errors that mean the credentials were refused.
_DENIED_CODES = frozenset({"UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException"})


def _count_keys(request: Mapping[str, object], table: str) -> int:
    entry = request.get(table)
    keys = entry.get("Keys") if isinstance(entry, Mapping) else None
    return len(keys) if isinstance(keys, list) else 0


def _is_true(value: object) -> bool:
    return str(value).strip().lower() not in {"0", "false", "no", "off"}


class DynamoDBBackend(KeyValueBackend):
    """Result backend on an Amazon DynamoDB table (or DynamoDB Local, moto)."""

    capabilities = BackendCapabilities(push_wait=False, native_join=True, chord_counter=True, expiry=True)

    @property
    def client(self) -> Any:
        """This process's boto3 DynamoDB client."""
        return self._clients.get()

    def setup(self) -> None:
        self.settings: Settings = parse_url(self.url, self.options)
        self.table = self.settings.table
        self.masked_url = mask_url(self.url)
        self._closed = False
        self._lock = threading.Lock()
        attempts = int(str(self.options.get("max_attempts", MAX_ATTEMPTS)))
        config = Config(
            connect_timeout=float(str(self.options.get("connect_timeout", CONNECT_TIMEOUT))),
            read_timeout=float(str(self.options.get("read_timeout", READ_TIMEOUT))),
            retries={"mode": "standard", "max_attempts": attempts},
        )
        session = boto3.session.Session(
            aws_access_key_id=self.settings.access_key,
            aws_secret_access_key=self.settings.secret_key,
            region_name=self.settings.region,
        )
        try:  # one client per process: a forked child must not share the parent's pooled connections
            self._clients = PerProcess(
                lambda: session.client("dynamodb", endpoint_url=self.settings.endpoint_url, config=config)
            )
            self._clients.get()
        except BotoCoreError as exc:  # no region anywhere, most often
            raise ConfigError(
                f"cannot set up DynamoDB for {self.masked_url}: {exc}; name the region in the URL "
                f"(dynamodb://@eu-west-1/table) or set AWS_REGION"
            ) from exc
        self._call = self._errors().call
        self._ensure_table(create=_is_true(self.options.get("create_table", True)))

    # ---- Connection and table -------------------------------------------------------

    def _errors(self) -> ServiceErrors:
        """What the service's failures mean, and what to check then."""
        if self.settings.endpoint_url:
            advice = f"is the local DynamoDB endpoint {self.settings.endpoint_url} running?"
        else:
            advice = (
                f"check the region ({self.settings.region}), your network, and the AWS credentials "
                f"(aws sts get-caller-identity; aws dynamodb describe-table --table-name {self.table})"
            )
        return ServiceErrors(
            (BotoCoreError, ClientError),
            transient_codes=_TRANSIENT_CODES,
            denied_codes=_DENIED_CODES,
            where=f"the DynamoDB result backend at {self.masked_url}",
            advice=advice,
            denied_advice=(
                f"check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the role) and the IAM policy on "
                f"table {self.table}"
            ),
        )

    def _ensure_table(self, *, create: bool) -> None:
        try:
            self._call("looking up the table", self.client.describe_table, TableName=self.table)
            return
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        if not create:
            raise BackendUnavailableError(
                f"the DynamoDB table {self.table!r} does not exist at {self.masked_url} and create_table is off; "
                f"create it with hash key {KEY!r} (string) and TTL attribute {TTL!r}, or set create_table = true"
            )
        self._create_table()

    def _create_table(self) -> None:
        kwargs: dict[str, object] = {
            "TableName": self.table,
            "KeySchema": [{"AttributeName": KEY, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": KEY, "AttributeType": "S"}],
        }
        if self.settings.read_capacity is not None:
            kwargs["ProvisionedThroughput"] = {
                "ReadCapacityUnits": self.settings.read_capacity,
                "WriteCapacityUnits": self.settings.write_capacity,
            }
        else:
            kwargs["BillingMode"] = "PAY_PER_REQUEST"
        try:
            self._call("creating the table", self.client.create_table, **kwargs)
            logger.info("created DynamoDB table %s at %s", self.table, self.masked_url)
        except ClientError as exc:
            # Another process created it first: fine.
            if error_code(exc) != "ResourceInUseException":
                raise
        self._call(
            "waiting for the new table",
            self.client.get_waiter("table_exists").wait,
            TableName=self.table,
            WaiterConfig={"Delay": 1, "MaxAttempts": int(TABLE_ACTIVE_TIMEOUT)},
        )
        try:
            self._call(
                "enabling TTL",
                self.client.update_time_to_live,
                TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL},
            )
        except ClientError as exc:
            # Already enabled by a concurrent creator, or TTL not allowed: reads filter anyway.
            logger.warning("could not enable TTL on DynamoDB table %s: %s", self.table, exc)

    # ---- Item encoding ----------------------------------------------------------------

    def _expiry_attributes(self, expires: float | None, now: float) -> dict[str, dict[str, str]]:
        if expires is None:
            return {}
        at = now + expires
        return {TTL: {"N": str(math.ceil(at))}, EXPIRES_AT: {"N": repr(at)}}

    @staticmethod
    def _is_live(item: Mapping[str, Mapping[str, str]], now: float) -> bool:
        at = item.get(EXPIRES_AT)
        if at is None:
            ttl = item.get(TTL)  # written by another client (Celery): whole seconds only
            return ttl is None or float(ttl["N"]) > now
        return float(at["N"]) > now

    @staticmethod
    def _value(item: Mapping[str, Mapping[str, object]]) -> bytes | None:
        if VALUE in item:
            data = item[VALUE].get("B")
            if isinstance(data, (bytes, bytearray)):
                return bytes(data)
            text = item[VALUE].get("S")  # Celery before 5.x wrote strings
            return str(text).encode("utf-8") if text is not None else None
        if COUNTER in item:
            return str(int(decimal.Decimal(str(item[COUNTER]["N"])))).encode("ascii")
        return None

    # ---- Storage primitives -----------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        answer = self._call(
            "reading a result", self.client.get_item, TableName=self.table, Key={KEY: {"S": key}}, ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None or not self._is_live(item, time.time()):
            return None
        return self._value(item)

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes | None] = {}
        unique = list(dict.fromkeys(keys))  # BatchGetItem rejects a key asked twice
        for start in range(0, len(unique), BATCH_SIZE):
            found.update(self._batch_get(unique[start : start + BATCH_SIZE]))
        return [found.get(key) for key in keys]

    def _batch_get(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}
        request: dict[str, object] = {self.table: {"Keys": [{KEY: {"S": key}} for key in keys], "ConsistentRead": True}}
        pause = UNPROCESSED_PAUSE
        for _ in range(UNPROCESSED_ROUNDS):
            answer = self._call("reading results", self.client.batch_get_item, RequestItems=request)
            now = time.time()
            for item in answer.get("Responses", {}).get(self.table, []):
                if self._is_live(item, now):
                    found[item[KEY]["S"]] = self._value(item)
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                return found
            # Throttled: back off with jitter before asking for the rest again.
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause *= 2
        raise BackendUnavailableError(
            f"DynamoDB kept {_count_keys(request, self.table)} keys unprocessed after "
            f"{UNPROCESSED_ROUNDS} rounds at {self.masked_url}; the table is throttled: raise its read capacity "
            f"or use on-demand billing"
        )

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        limit = MAX_ITEM_BYTES - ITEM_OVERHEAD - len(key.encode("utf-8"))
        if len(value) > limit:
            raise SerializationError(
                f"the record for {key} is {len(value):,} bytes encoded; a DynamoDB item holds at most "
                f"{MAX_ITEM_BYTES:,} bytes, so it was not stored. Return a reference to the data (an S3 key, "
                f"a URL) instead, or set result_compression"
            )
        now = time.time()
        item = {
            KEY: {"S": key},
            VALUE: {"B": value},
            TIMESTAMP: {"N": repr(now)},
            **self._expiry_attributes(expires, now),
        }
        self._call("storing a result", self.client.put_item, TableName=self.table, Item=item)

    def delete(self, key: str) -> None:
        self._call("deleting a result", self.client.delete_item, TableName=self.table, Key={KEY: {"S": key}})

    def incr(self, key: str, *, expires: float | None = None) -> int:
        while True:
            now = time.time()
            expiry = self._expiry_attributes(expires, now)
            names = {"#c": COUNTER, "#ttl": TTL, "#at": EXPIRES_AT}
            values: dict[str, dict[str, str]] = {":one": {"N": "1"}, ":now": {"N": repr(now)}}
            if expiry:
                update = "ADD #c :one SET #ttl = :ttl, #at = :at"
                values[":ttl"], values[":at"] = expiry[TTL], expiry[EXPIRES_AT]
            else:
                update = "ADD #c :one REMOVE #ttl, #at"
            try:
                answer = self._call(
                    "counting",
                    self.client.update_item,
                    TableName=self.table,
                    Key={KEY: {"S": key}},
                    UpdateExpression=update,
                    # A counter past its expiry must start again from 1, not carry on.
                    ConditionExpression="attribute_not_exists(#at) OR #at > :now",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="UPDATED_NEW",
                )
                return int(decimal.Decimal(str(answer["Attributes"][COUNTER]["N"])))
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
            if self._restart_counter(key, expiry, now):
                return 1

    def _restart_counter(self, key: str, expiry: Mapping[str, Mapping[str, str]], now: float) -> bool:
        """Replace an expired counter with 1; False when another client got there first."""
        item = {KEY: {"S": key}, COUNTER: {"N": "1"}, TIMESTAMP: {"N": repr(now)}, **expiry}
        try:
            self._call(
                "restarting an expired counter",
                self.client.put_item,
                TableName=self.table,
                Item=item,
                ConditionExpression="#at <= :now",
                ExpressionAttributeNames={"#at": EXPIRES_AT},
                ExpressionAttributeValues={":now": {"N": repr(now)}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._clients.close(lambda client: client.close())


__all__ = ["DynamoDBBackend"]

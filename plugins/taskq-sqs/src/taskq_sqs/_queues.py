"""The SQS API as the transport uses it: one boto3 client, queue URLs, dead-letter queues read back.

The client is made on first use; an error that means SQS cannot be reached becomes
:class:`~taskq.errors.BrokerUnavailableError` saying what to check. Queues are created on
first use (with the redrive policy when ``max_receive_count`` is set) and their URLs
cached.

Private: nothing outside taskq-sqs imports it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from taskq.drivers.support.connections import current_pid, keep_inherited
from taskq.drivers.transport import DeadLetter
from taskq.errors import BrokerUnavailableError
from taskq_sqs._layout import (
    DEAD_SUFFIX,
    FIFO_SUFFIX,
    MAX_BATCH,
    MISSING_QUEUE_CODES,
    dead_letter_from,
    dead_queue_name,
    sqs_queue_name,
)

logger = logging.getLogger(__name__)

# How many dead letters dead_letters() reads at most, and how long it hides them (s).
DEAD_LETTER_SCAN = 1000
DEAD_LETTER_PEEK_SECONDS = 5
# Seconds a reply may take beyond the longest long poll.
READ_TIMEOUT_MARGIN = 10


class SQSQueues:
    """One transport instance's client and the queues it has found; see the module docstring."""

    def __init__(
        self,
        url: str,
        options: Mapping[str, object],
        visibility_timeout: int,
        max_receive_count: int | None,
        wait_time_seconds: int,
    ) -> None:
        parts = urlsplit(url)
        self._access_key = unquote(parts.username) if parts.username else None
        self._secret_key = unquote(parts.password) if parts.password else None
        endpoint = options.get("endpoint_url")
        if endpoint is None and parts.hostname:
            scheme = "http" if str(options.get("is_secure", True)).lower() in {"false", "0", "no"} else "https"
            endpoint = f"{scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        self._endpoint = str(endpoint) if endpoint else None
        self._region = str(options.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
        self.prefix = str(options.get("queue_name_prefix", ""))
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self._read_timeout = wait_time_seconds + READ_TIMEOUT_MARGIN
        self._client: Any = None
        self._pid = 0  # the process that made _client
        self._urls: dict[str, str] = {}

    @property
    def client(self) -> Any:
        """The boto3 SQS client, made on first use in each process (a forked child must not share its parent's)."""
        if self._client is not None and self._pid != current_pid():
            keep_inherited(self._client)
            self._client = None
        if self._client is None:
            self._pid = current_pid()
            session = boto3.session.Session(
                aws_access_key_id=self._access_key,
                aws_secret_access_key=self._secret_key,
                region_name=self._region,
            )
            self._client = session.client(
                "sqs",
                endpoint_url=self._endpoint,
                config=Config(
                    connect_timeout=5,
                    read_timeout=self._read_timeout,
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        return self._client

    @property
    def is_open(self) -> bool:
        return self._client is not None and self._pid == current_pid()

    def close(self) -> None:
        if self._client is not None and self._pid == current_pid():
            self._client.close()
        keep_inherited(self._client if self._pid != current_pid() else None)
        self._client = None

    def where(self) -> str:
        """What the client talks to, for messages."""
        return self._endpoint or f"SQS in {self._region}"

    def call(self, operation: str, **kwargs: object) -> Any:
        """``client.<operation>(**kwargs)``; :class:`BrokerUnavailableError` when SQS cannot be reached."""
        try:
            return getattr(self.client, operation)(**kwargs)
        except BotoCoreError as exc:
            raise BrokerUnavailableError(
                f"cannot reach {self.where()} ({exc}); check the network, the region "
                "and endpoint_url in broker_transport_options"
            ) from exc

    def url(self, queue: str) -> str:
        """The URL of taskq's ``queue``, created on first use and cached."""
        url = self._urls.get(queue)
        if url is None:
            url = self._urls[queue] = self.ensure(sqs_queue_name(queue, self.prefix))
        return url

    def ensure(self, name: str, *, dead: bool = False) -> str:
        """The URL of the SQS queue ``name``, created if missing."""
        try:
            return str(self.call("get_queue_url", QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in MISSING_QUEUE_CODES:
                raise
        attributes = {"VisibilityTimeout": str(self.visibility_timeout)}
        if name.endswith(FIFO_SUFFIX):
            attributes["FifoQueue"] = "true"
        if self.max_receive_count and not dead:
            target = self.ensure(dead_queue_name(name), dead=True)
            arn = self.call("get_queue_attributes", QueueUrl=target, AttributeNames=["QueueArn"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": str(self.max_receive_count)}
            )
        logger.info("creating SQS queue %s", name)
        return str(self.call("create_queue", QueueName=name, Attributes=attributes)["QueueUrl"])

    def dead_url(self, queue: str) -> tuple[str, str]:
        """The SQS name of taskq's ``queue`` and the URL of its dead-letter queue (created if missing)."""
        name = sqs_queue_name(queue, self.prefix)
        key = DEAD_SUFFIX + name
        target = self._urls.get(key)
        if target is None:
            target = self._urls[key] = self.ensure(dead_queue_name(name), dead=True)
        return name, target

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, most recent first. Reads the ``-dead`` queues, hiding each for a moment."""
        if queue is not None:
            names = [dead_queue_name(sqs_queue_name(queue, self.prefix))]
        else:
            listed = self.call("list_queues", QueueNamePrefix=self.prefix) if self.prefix else self.call("list_queues")
            names = [
                url.rsplit("/", 1)[-1]
                for url in listed.get("QueueUrls") or []
                if url.endswith(DEAD_SUFFIX) or url.endswith(DEAD_SUFFIX + FIFO_SUFFIX)
            ]
        found: list[DeadLetter] = []
        for name in names:
            found.extend(self._read_dead(name))
        found.sort(key=lambda d: d.timestamp, reverse=True)
        return found[:limit]

    def _read_dead(self, name: str) -> list[DeadLetter]:
        url = self.ensure(name, dead=True)
        seen: list[tuple[str, DeadLetter]] = []
        while len(seen) < DEAD_LETTER_SCAN:
            reply = self.call(
                "receive_message",
                QueueUrl=url,
                MaxNumberOfMessages=MAX_BATCH,
                VisibilityTimeout=DEAD_LETTER_PEEK_SECONDS,
                WaitTimeSeconds=0,
                AttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
                MessageAttributeNames=["All"],
            )
            batch = reply.get("Messages") or []
            if not batch:
                break
            seen += [(raw["ReceiptHandle"], dead_letter_from(raw, name)) for raw in batch]
        for start in range(0, len(seen), MAX_BATCH):  # visible again for the next reader
            chunk = seen[start : start + MAX_BATCH]
            self.call(
                "change_message_visibility_batch",
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, (h, _) in enumerate(chunk)],
            )
        return [dead for _, dead in seen]


__all__ = ["SQSQueues"]

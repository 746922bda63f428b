"""Calls to a hosted service's client (boto3's, and any shaped like it), its failures told as taskq's errors.

Core imports no client library: the driver names the client's exception classes, and an
error's code is read where botocore's ``ClientError`` carries it,
``exc.response["Error"]["Code"]``::

    self._call = ServiceErrors(
        (BotoCoreError, ClientError),
        transient_codes=frozenset({"ThrottlingException", "ServiceUnavailable"}),
        denied_codes=frozenset({"AccessDeniedException"}),
        where=f"the DynamoDB result backend at {masked_url}",
        advice="check the region, your network and the AWS credentials (aws sts get-caller-identity)",
        denied_advice="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the role) and the IAM policy",
    ).call
    answer = self._call("reading a result", self.client.get_item, TableName=table, Key=key)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from taskq.errors import BackendUnavailableError

T = TypeVar("T")


def error_code(exc: BaseException) -> str | None:
    """The code the service answered ``exc`` with (``""`` when it gave none); None when it never answered."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    error = response.get("Error")
    return str(error.get("Code") or "") if isinstance(error, Mapping) else ""


@dataclass(frozen=True, slots=True)
class ServiceErrors:
    """Which of a client's errors mean the service is away or refuses us, and what to say then.

    ``errors`` are the client's exception classes. One that carries no answer from the
    service (a connection, a timeout, a signing problem), or one of ``transient_codes``
    (throttled, overloaded: the client's own retries are spent), means the service cannot
    serve us now; one of ``denied_codes`` means it refused the credentials. Both become a
    :class:`~taskq.errors.BackendUnavailableError` that says ``where``, what was being
    done, and what to check. Any other code is the caller's to handle (a missing key, a
    lost race), so that error is raised as it is.
    """

    errors: tuple[type[BaseException], ...]
    transient_codes: frozenset[str]
    denied_codes: frozenset[str]
    where: str  # "the S3 result backend at s3://bucket/prefix"
    advice: str  # what to check when the service cannot be reached
    denied_advice: str  # what to check when it refuses access

    def call(self, doing: str, method: Callable[..., T], /, **kwargs: object) -> T:
        """``method(**kwargs)``, its unavailability or refusal raised as ours; ``doing`` says what for."""
        try:
            return method(**kwargs)
        except self.errors as exc:
            code = error_code(exc)
            if code is None or code in self.transient_codes:
                raise BackendUnavailableError(
                    f"cannot reach {self.where} while {doing} ({exc}); {self.advice}"
                ) from exc
            if code in self.denied_codes:
                raise BackendUnavailableError(
                    f"{self.where} refused access while {doing} ({exc}); {self.denied_advice}"
                ) from exc
            raise


__all__ = ["ServiceErrors", "error_code"]

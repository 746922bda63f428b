"""ServiceErrors: which of a cloud client's failures become BackendUnavailableError, and what they say."""

from __future__ import annotations

import pytest

from taskq.drivers.support.services import ServiceErrors, error_code
from taskq.errors import BackendUnavailableError


class NoAnswerError(Exception):
    """Like botocore's BotoCoreError: the service never answered."""


class AnsweredError(Exception):
    """Like botocore's ClientError: the service answered with an error code."""

    def __init__(self, code: str) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code, "Message": "..."}}


ERRORS = ServiceErrors(
    (NoAnswerError, AnsweredError),
    transient_codes=frozenset({"SlowDown"}),
    denied_codes=frozenset({"AccessDenied"}),
    where="the Acme result backend at acme://bucket",
    advice="is the endpoint running?",
    denied_advice="check the credentials",
)


def fail(exc: BaseException) -> None:
    raise exc


def test_error_code_reads_the_code_of_an_answer_and_none_without_one() -> None:
    assert error_code(AnsweredError("NoSuchKey")) == "NoSuchKey"
    assert error_code(NoAnswerError("timed out")) is None
    assert error_code(ValueError("other")) is None


def test_a_call_returns_what_the_method_returns() -> None:
    assert ERRORS.call("reading", lambda **kwargs: kwargs, Key="k") == {"Key": "k"}


@pytest.mark.parametrize("exc", [NoAnswerError("timed out"), AnsweredError("SlowDown")], ids=["silent", "throttled"])
def test_an_unreachable_or_overloaded_service_is_unavailable_with_advice(exc: BaseException) -> None:
    advice = r"cannot reach the Acme .* while reading .*endpoint running"
    with pytest.raises(BackendUnavailableError, match=advice) as caught:
        ERRORS.call("reading", fail, exc=exc)
    assert caught.value.__cause__ is exc


def test_refused_credentials_say_what_to_check() -> None:
    with pytest.raises(BackendUnavailableError, match=r"refused access while writing .*check the credentials"):
        ERRORS.call("writing", fail, exc=AnsweredError("AccessDenied"))


def test_any_other_answer_is_the_callers_to_handle() -> None:
    with pytest.raises(AnsweredError, match="NoSuchKey"):
        ERRORS.call("reading", fail, exc=AnsweredError("NoSuchKey"))

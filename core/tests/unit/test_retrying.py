"""RetryPolicy: how often an operation runs again, after which pauses, and what it raises at the end."""

from __future__ import annotations

import pytest

from taskq.drivers.support.retrying import RetryPolicy
from taskq.errors import BackendUnavailableError

# Pauses short enough for a unit test, in seconds.
FIRST_DELAY = 0.001
MAX_DELAY = 0.004


class Flaky:
    """Raises ``error`` the first ``failures`` times it is called, then returns how often it was called."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.calls


def test_an_operation_that_recovers_returns_its_value_after_the_pauses_double_up_to_the_cap() -> None:
    policy = RetryPolicy((OSError,), attempts=5, first_delay=FIRST_DELAY, max_delay=MAX_DELAY)
    pauses: list[float] = []
    assert policy.run(Flaky(4, OSError("lost")), on_retry=lambda exc, delay: pauses.append(delay)) == 5
    assert pauses == [0.001, 0.002, 0.004, 0.004]


def test_the_last_error_is_raised_as_it_is_without_give_up() -> None:
    operation = Flaky(10, ConnectionResetError("reset"))
    with pytest.raises(ConnectionResetError, match="reset"):
        RetryPolicy((OSError,), attempts=3, first_delay=FIRST_DELAY).run(operation)
    assert operation.calls == 3


def test_give_up_turns_the_last_error_into_the_one_raised_chained_to_it() -> None:
    def unavailable(exc: BaseException) -> BackendUnavailableError:
        return BackendUnavailableError(f"cannot reach the store ({exc}); is it running?")

    with pytest.raises(BackendUnavailableError, match="is it running") as caught:
        RetryPolicy((OSError,), attempts=2, first_delay=FIRST_DELAY).run(Flaky(2, OSError("down")), give_up=unavailable)
    assert isinstance(caught.value.__cause__, OSError)


def test_an_error_outside_the_policy_is_raised_at_once() -> None:
    operation = Flaky(1, ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        RetryPolicy((OSError,), attempts=5, first_delay=FIRST_DELAY).run(operation)
    assert operation.calls == 1


def test_a_policy_that_would_never_run_is_refused() -> None:
    with pytest.raises(ValueError, match="at least once"):
        RetryPolicy((OSError,), attempts=0, first_delay=FIRST_DELAY)

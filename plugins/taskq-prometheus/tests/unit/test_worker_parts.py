"""The worker mode's small parts: the port setting and the dead-letter reasons' kinds."""

from __future__ import annotations

import pytest

from taskq.errors import ConfigError
from taskq_prometheus.worker import parse_port, reason_kind


@pytest.mark.parametrize(("raw", "port"), [(None, None), ("", None), (9808, 9808), ("9808", 9808), (" 80 ", 80)])
def test_prometheus_port_is_read_from_a_number_or_text(raw: object, port: int | None) -> None:
    assert parse_port(raw) == port


@pytest.mark.parametrize("raw", [0, "0", -1, 65536, "port", 9808.5, True])
def test_a_port_that_is_not_one_is_refused_naming_the_setting(raw: object) -> None:
    with pytest.raises(ConfigError, match=r"prometheus_port = .* is not a port number.*TASKQ_PROMETHEUS_PORT"):
        parse_port(raw)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("cannot decode the message: not JSON", "undecodable"),
        ("unknown task 'x': it is not registered on this worker", "unknown_task"),
        ("task t[1] was handed out 6 times without being acknowledged (task_max_deliveries=5)", "poison"),
        ("unsigned message (task 'a'[1], unverified): this worker accepts only signed messages", "refused"),
        ("bad signature (task 'a'[1], unverified)", "refused"),
        ("task failed and acks_on_failure_or_timeout is off", "failed_kept"),
        ("the task said so", "rejected"),
    ],
)
def test_dead_letter_reasons_fall_in_few_kinds(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_values_by_task_keep_a_retried_tasks_overlapping_runs_in_order() -> None:
    from taskq_prometheus.worker import _ByTask

    runs: _ByTask[int] = _ByTask(limit=3)
    runs.add("a", 1)
    runs.add("a", 2)
    assert (len(runs), runs.take("a"), runs.take("a"), runs.take("a"), len(runs)) == (2, 1, 2, None, 0)


def test_values_by_task_forget_the_oldest_ids_past_the_limit() -> None:
    from taskq_prometheus.worker import _ByTask

    runs: _ByTask[int] = _ByTask(limit=2)
    for number, task_id in enumerate("abc"):
        runs.add(task_id, number)
    assert (len(runs), runs.take("a"), runs.take("c")) == (2, None, 2)

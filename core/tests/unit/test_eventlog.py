"""The event log's shared rules: one line of JSON per event, what a reader accepts, who trims."""

from __future__ import annotations

import random

import pytest

from taskq.drivers.support.eventlog import TRIM_EVERY, crosses_trim_mark, decode_event, encode_event

EVENT = {
    "type": "task-succeeded",
    "uuid": "u1",
    "result": "'gr\u00fc\u00df\n\u2713\u2028\r'",
    "runtime": 0.25,
    "n": [1, None],
}


def test_an_event_is_one_line_of_json_and_comes_back_whole() -> None:
    line = encode_event(EVENT)
    assert "\n" not in line and "\r" not in line
    assert decode_event(line) == EVENT
    assert decode_event(line.encode()) == EVENT


def test_an_event_with_a_value_json_cannot_hold_raises_type_error() -> None:
    with pytest.raises(TypeError):
        encode_event({"type": "task-failed", "exception": object()})


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"type": "x"', "not JSON"),
        (b'{"type": "\xff"}', "not JSON"),  # not UTF-8
        (b"", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[1, 2]", "a JSON list, not a mapping"),
        (b'"task-succeeded"', "a JSON str, not a mapping"),
        (b"{}", "no text 'type'"),
        (b'{"type": 5}', "no text 'type'"),
        (b'{"type": null}', "no text 'type'"),
    ],
)
def test_what_is_not_an_event_is_refused_with_the_reason(stored: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_event(stored)


def test_a_batch_trims_exactly_when_it_holds_a_multiple_of_trim_every() -> None:
    chooser = random.Random(7)  # batch sizes from 1 to past a mark's spacing
    position = 1
    while position < 20 * TRIM_EVERY:
        size = chooser.choice([1, 2, 7, 100, TRIM_EVERY - 1, TRIM_EVERY, 3 * TRIM_EVERY])
        last = position + size - 1
        holds_a_mark = any(number % TRIM_EVERY == 0 for number in range(position, last + 1))
        assert crosses_trim_mark(position, last) == holds_a_mark, (position, last)
        position = last + 1


def test_a_batch_ending_on_a_mark_crosses_it_and_the_next_does_not() -> None:
    assert crosses_trim_mark(TRIM_EVERY - 4, TRIM_EVERY)
    assert not crosses_trim_mark(TRIM_EVERY + 1, TRIM_EVERY + 5)

"""Rounding delays to delay queues: never early for plain messages, few queues overall."""

from __future__ import annotations

from taskq_amqp._layout import MAX_TTL_MS, delay_bucket, delay_queue_name


def test_short_delays_are_exact_to_the_millisecond() -> None:
    assert [delay_bucket(s) for s in (0.001, 0.05, 0.127)] == [1, 50, 127]


def test_no_delay_needs_no_queue() -> None:
    assert delay_bucket(0) == 0
    assert delay_bucket(0.0004, early_ok=True) == 0


def test_plain_messages_round_up_and_eta_messages_round_down_within_a_sixty_fourth() -> None:
    for seconds in (0.3333, 1.5, 59.9, 3599.123, 86_400 * 7 + 0.5):
        up, down = delay_bucket(seconds), delay_bucket(seconds, early_ok=True)
        assert down <= seconds * 1000 <= up
        assert up - down <= seconds * 1000 / 64 + 1


def test_distinct_delays_share_at_most_sixty_four_queues_per_doubling() -> None:
    buckets = {delay_bucket(3600 + i * 0.1) for i in range(36_000)}  # one to two hours: two doublings
    assert len(buckets) <= 2 * 64


def test_delays_beyond_the_ttl_limit_are_capped() -> None:
    assert delay_bucket(10**8) == MAX_TTL_MS


def test_delay_queue_names_carry_the_queue_and_the_delay() -> None:
    assert delay_queue_name("celery", 1500) == "celery.delay.1500"

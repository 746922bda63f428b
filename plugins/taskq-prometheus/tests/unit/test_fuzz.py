"""ClusterMetrics.event fuzzed with hypothesis: any event is taken or skipped, never raised, and
the exposition stays readable by Prometheus' parser."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from taskq import App
from taskq_prometheus import ClusterMetrics

TYPES = [
    "task-sent",
    "task-received",
    "task-started",
    "task-succeeded",
    "task-failed",
    "task-retried",
    "task-rejected",
    "task-revoked",
    "worker-online",
    "worker-heartbeat",
    "worker-offline",
]
FIELDS = ["type", "uuid", "name", "hostname", "timestamp", "runtime", "eta", "freq", "clock", "result"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(min_size=250, max_size=300),
    st.binary(max_size=10),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
events = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=8),
    st.one_of(values, st.sampled_from(TYPES), st.sampled_from(["u1", "u2", "t.add", "w1@h"])),
    max_size=8,
)
anything = st.one_of(events, values)


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    url = f"memory://{uuid.uuid4().hex}"
    app = App("fuzz", read_config=False, broker_url=url, result_backend=url)
    yield app
    app.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(anything, max_size=20))
def test_any_event_is_taken_or_skipped_and_the_exposition_stays_valid(app: App, feed: list[object]) -> None:
    metrics = ClusterMetrics(app, queues=["fuzz"])
    for event in feed:
        metrics.event(event)  # type: ignore[arg-type]  # hostile on purpose
    body, _ = metrics.render()
    families = {family.name: family for family in text_string_to_metric_families(body.decode("utf-8"))}
    taken = sum(sample.value for sample in families["taskq_events"].samples)
    skipped = sum(sample.value for sample in families["taskq_events_skipped"].samples)
    assert taken + skipped == len(feed)
    for sample in families["taskq_task_runtime_seconds"].samples:
        assert sample.value >= 0


class Exploding(dict[str, object]):
    """A mapping whose reads raise, as a hostile decoder could hand over."""

    def get(self, key: str, default: object = None) -> object:
        if key == "type":
            return "task-received"
        raise RuntimeError("boom")


def test_a_mapping_whose_fields_raise_is_skipped(app: App) -> None:
    metrics = ClusterMetrics(app, queues=[])
    metrics.event(Exploding())
    families = {f.name: f for f in text_string_to_metric_families(metrics.render()[0].decode())}
    assert {s.labels["reason"]: s.value for s in families["taskq_events_skipped"].samples}["bad_field"] == 1

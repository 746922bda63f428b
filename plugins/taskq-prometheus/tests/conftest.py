"""Fixtures shared by the tests: read an exposition with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families

#: ``value(text, name, labels=None, default=None)``: see :func:`value`.
Value = Callable[..., float]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of an exposition, parsed by the real parser."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, labels: Mapping[str, str] | None = None, default: float | None = None) -> float:
    """The value of sample ``name`` with exactly ``labels`` (``default`` if absent, else KeyError)."""
    key = (name, tuple(sorted((labels or {}).items())))
    found = samples(text)
    if key not in found:
        if default is not None:
            return default
        raise KeyError(f"no sample {key}; have: {sorted(k for k in found if k[0] == name)}")
    return found[key]


def scrape(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200
        return response.read().decode("utf-8")


@pytest.fixture
def metric() -> Value:
    """:func:`value`: one sample's value in an exposition."""
    return value


@pytest.fixture
def get_metrics() -> Callable[[str], str]:
    """:func:`scrape`: GET an exposition over HTTP."""
    return scrape

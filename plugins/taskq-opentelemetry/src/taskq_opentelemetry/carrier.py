"""Reading and writing trace context in task message headers (W3C ``traceparent``/``tracestate``).

The context travels as top-level protocol 2 headers, where Celery's own
opentelemetry-instrumentation-celery writes it (its ``before_task_publish`` handler injects
into the message headers) and reads it (as attributes of ``task.request``, which Celery
fills from those headers); so traces cross between taskq and Celery either way.

A worker's headers come from the broker: anything at all. The getter offers the propagator
only text keys and short text values, so a hostile header can neither crash the extraction
nor make it do much work; the propagator then checks the format itself.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from opentelemetry.propagators.textmap import Getter, Setter

# Longest header value handed to the propagator, in characters (a traceparent is 55; the
# W3C limit for tracestate is 32 entries of at most 256 + 1 + 256 characters each).
MAX_VALUE_LENGTH = 8192


class HeaderGetter(Getter[Mapping[str, object]]):
    """Reads propagation fields from the headers of a received message, skipping what is not text."""

    def get(self, carrier: Mapping[str, object], key: str) -> list[str] | None:
        value = carrier.get(key)
        if type(value) is str and len(value) <= MAX_VALUE_LENGTH:
            return [value]
        return None

    def keys(self, carrier: Mapping[str, object]) -> list[str]:
        return [key for key in carrier if type(key) is str]


class HeaderSetter(Setter[MutableMapping[str, object]]):
    """Writes propagation fields into the headers of a message about to be sent."""

    def set(self, carrier: MutableMapping[str, object], key: str, value: str) -> None:
        carrier[key] = value


HEADER_GETTER = HeaderGetter()
HEADER_SETTER = HeaderSetter()

__all__ = ["HEADER_GETTER", "HEADER_SETTER", "MAX_VALUE_LENGTH", "HeaderGetter", "HeaderSetter"]

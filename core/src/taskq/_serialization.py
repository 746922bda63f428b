"""The serializer registry: serializers by name and content type, and the accept list (internal).

A serializer is found by its name (``task_serializer = "json"``) when sending and by the
message's content type when receiving. ``accept_content`` lists what a worker (and a
result reader) is willing to decode; anything else is refused with
:class:`ContentDisallowedError`, so pickle never runs unless it was asked for.
"""

from __future__ import annotations

from collections.abc import Iterable

from taskq.drivers.serializer import Serializer
from taskq.errors import ContentDisallowedError, SerializationError


class SerializerRegistry:
    """Serializers by name and by content type, and the accept list that guards decoding."""

    def __init__(self, serializers: Iterable[Serializer], accept: Iterable[str]) -> None:
        self._by_name: dict[str, Serializer] = {}
        self._by_type: dict[str, Serializer] = {}
        for serializer in serializers:
            self._by_name[serializer.name] = serializer
            self._by_type[serializer.content_type] = serializer
        self.accept: frozenset[str] = frozenset(self._accepted_types(accept))

    def _accepted_types(self, accept: Iterable[str]) -> Iterable[str]:
        for item in accept:
            if "/" in item:
                yield item
            elif item in self._by_name:
                yield self._by_name[item].content_type
            else:
                raise SerializationError(
                    f"accept_content names the serializer {item!r}, which no installed "
                    f"plugin provides; installed: {', '.join(sorted(self._by_name))}.\n"
                    f"Install the plugin that provides it (for example: pip install "
                    f"taskq-{item}) or remove it from accept_content."
                )

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Serializer:
        """The serializer called ``name``; a clear error naming the installed ones if none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise SerializationError(
                f"no serializer named {name!r}; installed: {', '.join(self.names)}.\n"
                f"Install it with: pip install taskq-{name}"
            ) from None

    def dumps(self, value: object, name: str) -> tuple[bytes, str, str]:
        """Serialize ``value``; return ``(data, content_type, content_encoding)``."""
        serializer = self.get(name)
        try:
            data = serializer.dumps(value)
        except Exception as exc:
            raise SerializationError(
                f"cannot serialize {type(value).__name__} with {name!r}: {exc}. "
                f"Pass values {name} can carry, or choose another serializer."
            ) from exc
        return data, serializer.content_type, serializer.content_encoding

    def loads(self, data: bytes, content_type: str, accept: frozenset[str] | None = None) -> object:
        """Decode ``data`` of ``content_type``, refusing types outside ``accept``."""
        allowed = self.accept if accept is None else accept
        if content_type not in allowed:
            raise ContentDisallowedError(
                f"refusing to decode content of type {content_type!r}: it is not in "
                f"accept_content ({', '.join(sorted(allowed))}). Add it to accept_content "
                f"if you trust every sender."
            )
        serializer = self._by_type.get(content_type)
        if serializer is None:
            raise SerializationError(
                f"no installed serializer reads content type {content_type!r}; installed: {', '.join(self.names)}"
            )
        return serializer.loads(data)

    def accept_types(self, names: Iterable[str]) -> frozenset[str]:
        """Content types for a list of serializer names or content types."""
        return frozenset(self._accepted_types(names))


__all__ = ["SerializerRegistry"]

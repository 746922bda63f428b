"""The ``jsonz`` serializer: compact JSON, compressed with zlib.

Worth it for tasks that carry large, repetitive arguments (documents, long lists);
for small messages plain ``json`` is smaller and faster. Values are limited to what the
standard :mod:`json` module writes: dicts, lists, strings, numbers, booleans and None
(tuples arrive as lists).
"""

from __future__ import annotations

import json
import zlib

from taskq.drivers.serializer import Serializer

CONTENT_TYPE = "application/x-taskq-jsonz"
# zlib level: 6 is zlib's own default, a good balance of speed and size.
COMPRESSION_LEVEL = 6

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: object) -> bytes:
    """Encode ``value`` as UTF-8 JSON and compress it."""
    return zlib.compress(_encoder.encode(value).encode("utf-8"), COMPRESSION_LEVEL)


def loads(data: bytes) -> object:
    """Decompress ``data`` and decode the JSON inside."""
    return json.loads(zlib.decompress(bytes(data)).decode("utf-8"))


JSONZ = Serializer(
    name="jsonz",
    content_type=CONTENT_TYPE,
    content_encoding="binary",
    dumps=dumps,
    loads=loads,
)

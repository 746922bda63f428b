"""Task and group ids as Celery makes them: random UUIDs (version 4) in their text form.

Written out here rather than with :func:`uuid.uuid4`: importing :mod:`uuid` imports
:mod:`platform` too, a few milliseconds of every worker's and client's start, and
formatting sixteen random bytes directly is quicker per id than building a ``UUID``.
"""

from __future__ import annotations

import os


def new_id() -> str:
    """A random RFC 4122 version 4 UUID, as ``"xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


__all__ = ["new_id"]

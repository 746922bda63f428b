"""An exception type only the workers import: a client that reads its failures must not."""

from __future__ import annotations


class InteropError(Exception):
    """Raised by ``interop.fail_custom`` on either kind of worker."""

"""The solo pool: runs each task inline, in the thread that hands it over."""

from __future__ import annotations

import logging
from collections.abc import Callable

from taskq.pool import Pool, PoolCapabilities

logger = logging.getLogger(__name__)


class SoloPool(Pool):
    """One task at a time, in the caller's thread; ``apply`` returns when it is done."""

    capabilities = PoolCapabilities(runs_inline=True)

    def __init__(self, concurrency: int = 1, **options: object) -> None:
        if concurrency != 1:
            logger.warning("the solo pool runs one task at a time; ignoring concurrency=%d", concurrency)
        super().__init__(1, **options)
        self._busy = False

    def apply(
        self,
        target: Callable[..., object],
        args: tuple[object, ...],
        *,
        callback: Callable[[object], None],
        error_callback: Callable[[BaseException], None],
    ) -> None:
        self._busy = True
        try:
            result = target(*args)
        except Exception as exc:
            error_callback(exc)
            return
        finally:
            self._busy = False
        callback(result)

    @property
    def free_slots(self) -> int:
        return 0 if self._busy else 1

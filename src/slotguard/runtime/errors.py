"""What slotguard.runtime does when its own bookkeeping fails: say so once, in the
log, and let the application's call go on."""

from __future__ import annotations

import logging

logger = logging.getLogger("slotguard.runtime")

_reported: set[str] = set()


def internal_error(where: str, error: BaseException) -> None:
    """Log once per place that slotguard's own bookkeeping failed."""
    if where in _reported:
        return
    _reported.add(where)
    logger.warning("slotguard.runtime: internal error in %s: %r", where, error)

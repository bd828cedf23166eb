"""The runtime twin of slotguard's static check: which code holds which connection.

Static analysis says where a leak *can* happen; this says where one *did*. It
tracks every checkout of SQLAlchemy engines (sync and asyncio), asyncpg pools,
psycopg_pool pools and psycopg2 pools, and every direct connection
(``asyncpg.connect``, ``psycopg.connect``, ``psycopg2.connect``), with the
stack of the project code that took it; and, on request, transactions left
idle between two statements (SQLAlchemy, psycopg).

In tests::

    with slotguard.runtime.track() as tracker:
        run_the_code()
    assert not tracker.checked_out(), tracker.checked_out()

(the pytest plugin, ``--slotguard-leaks=fail``, does this around every test).

In production::

    tracker = slotguard.runtime.install(threshold=30)

logs a warning (logger ``slotguard.runtime``), from a timer thread, for any
pooled connection held longer than 30 s, with the stack that took it, and any
transaction idle longer than 30 s, with where the code holding it waits;
``tracker.summary()`` is ready for a health endpoint. ``uninstall()`` puts
every library back as it was.

Nothing here imports libcst or the analysis: this package runs inside the
application's process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import EllipsisType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slotguard.runtime.stack import DEFAULT_DEPTH, Frame, Stack
    from slotguard.runtime.tracker import Checkout, IdleTransaction, Tracker
    from slotguard.runtime.watchdog import Watchdog

__all__ = [
    "DEFAULT_DEPTH",
    "Checkout",
    "Frame",
    "IdleTransaction",
    "Stack",
    "Tracker",
    "install",
    "installed",
    "track",
    "uninstall",
]

_LAZY = {
    "DEFAULT_DEPTH": "slotguard.runtime.stack",
    "Frame": "slotguard.runtime.stack",
    "Stack": "slotguard.runtime.stack",
    "Checkout": "slotguard.runtime.tracker",
    "IdleTransaction": "slotguard.runtime.tracker",
    "Tracker": "slotguard.runtime.tracker",
}
_lock = threading.Lock()
_installed: tuple[Tracker, Watchdog | None] | None = None


def __getattr__(name: str) -> Any:
    """The value types load with their modules on first use: the pytest plugin
    imports this package in every test session, most of them with the check off."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


@contextmanager
def track(*, depth: int | None = None, idle_threshold: float | None = None) -> Iterator[Tracker]:
    """Track checkouts for the duration of a ``with`` block.

    ``depth`` project frames are kept per taking stack (by default
    ``DEFAULT_DEPTH``, 8); ``idle_threshold``
    (seconds) also watches transactions idle between statements, which costs
    a little on every statement.
    """
    from slotguard.runtime.stack import DEFAULT_DEPTH
    from slotguard.runtime.tracker import Tracker

    tracker = Tracker(
        depth=DEFAULT_DEPTH if depth is None else depth, idle_threshold=idle_threshold
    ).start()
    try:
        yield tracker
    finally:
        tracker.stop()


def install(
    threshold: float | None = 30.0,
    *,
    idle_threshold: float | EllipsisType | None = ...,
    depth: int | None = None,
    logger: logging.Logger | None = None,
    interval: float | None = None,
) -> Tracker:
    """The production form: track every checkout until :func:`uninstall`.

    With a ``threshold`` (seconds), a timer thread logs a warning for each
    pooled connection held longer, and each transaction idle longer than
    ``idle_threshold`` (by default the same), with the stack that took it or
    where the code holding the transaction waits; each once. ``threshold=None`` only tracks, for
    :meth:`Tracker.summary`. ``interval`` is how often the timer looks (by
    default a quarter of the threshold, at most a second).
    """
    global _installed
    if threshold is not None and threshold <= 0:
        raise ValueError(f"threshold must be positive (seconds), not {threshold}")
    from slotguard.runtime.stack import DEFAULT_DEPTH
    from slotguard.runtime.tracker import Tracker
    from slotguard.runtime.watchdog import Watchdog

    idle = threshold if isinstance(idle_threshold, EllipsisType) else idle_threshold
    with _lock:
        if _installed is not None:
            raise RuntimeError(
                "slotguard.runtime is already installed; call slotguard.runtime.uninstall() first"
            )
        tracker = Tracker(
            depth=DEFAULT_DEPTH if depth is None else depth, idle_threshold=idle
        ).start()
        watchdog = None
        if threshold is not None:
            watchdog = Watchdog(tracker, threshold, log=logger, interval=interval).start()
        _installed = (tracker, watchdog)
    return tracker


def installed() -> Tracker | None:
    """The tracker :func:`install` started, if it is running."""
    current = _installed
    return current[0] if current is not None else None


def uninstall() -> None:
    """Stop what :func:`install` started: the timer, the tracking, the hooks."""
    global _installed
    with _lock:
        current, _installed = _installed, None
    if current is None:
        return
    tracker, watchdog = current
    if watchdog is not None:
        watchdog.stop()
    tracker.stop()

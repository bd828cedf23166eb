"""The production form's timer: log, from a thread of its own, every connection
held past the threshold and every transaction idle past its threshold.

HikariCP's ``leakDetectionThreshold`` for Python. The thread wakes a few times
per threshold, reads the tracker under its lock (a copy of a few entries) and
logs outside it; the application's threads and event loop never wait on it,
and nothing it does touches a connection (a psycopg transaction's status is a
field of libpq's connection, read without a round trip). Each connection and
each wait is logged once; a connection logged as held too long that comes back
later is logged again, at INFO, so that a slow holder is told apart from a leak.
"""

from __future__ import annotations

import logging
import os
import threading

from slotguard.runtime.tracker import Checkout, IdleTransaction, Tracker

logger = logging.getLogger("slotguard.runtime")


class Watchdog:
    """A daemon thread logging what ``tracker`` holds past ``threshold`` seconds."""

    def __init__(
        self,
        tracker: Tracker,
        threshold: float,
        *,
        log: logging.Logger | None = None,
        interval: float | None = None,
        root: str | None = None,
    ) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be positive, not {threshold}")
        self.tracker = tracker
        self.threshold = threshold
        self.log = log or logger
        shortest = min(threshold, tracker.idle_threshold or threshold)
        self.interval = interval if interval is not None else min(1.0, max(0.01, shortest / 4))
        self.root = root if root is not None else os.getcwd()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slotguard-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the timer die silently, never take the process down
                self.log.exception("slotguard.runtime: the watchdog's check failed")

    def check(self) -> None:
        """One pass: log what became overdue since the last pass."""
        holders, idles = self.tracker._overdue(self.threshold)
        ended, unleaked = self.tracker._ended_waits()
        for checkout in holders:
            self.log.warning("%s", self.held_message(checkout))
        for idle in (*idles, *ended):
            self.log.warning("%s", self.idle_message(idle))
        for checkout in unleaked:
            frame = checkout.taken_at
            where = frame.location(self.root) if frame is not None else "an unknown place"
            self.log.info(
                "slotguard: the %s taken at %s, reported as held too long, came back after %.1f s",
                checkout.what,
                where,
                checkout.held_for,
            )

    def held_message(self, checkout: Checkout) -> str:
        frame = checkout.taken_at
        where = frame.location(self.root) if frame is not None else "an unknown place"
        lost = (
            " (garbage-collected without being returned: its pool counts it as out for good)"
            if checkout.lost
            else ""
        )
        return (
            f"slotguard: {checkout.what} held for {checkout.held_for:.1f} s "
            f"(threshold {self.threshold:g} s), taken at {where} in thread "
            f"{checkout.thread}{lost}\n"
            f"Stack of the code that took it (most recent call last):\n"
            f"{checkout.stack.format(self.root)}"
        )

    def idle_message(self, idle: IdleTransaction) -> str:
        threshold = f"(threshold {self.tracker.idle_threshold:g} s)"
        if idle.ongoing:
            return (
                f"slotguard: a {idle.library} connection idle in transaction for "
                f"{idle.idle_for:.1f} s {threshold}, in thread {idle.thread}\n"
                f"Where the code holding it waits now (most recent call last):\n"
                f"{idle.stack.format(self.root)}"
            )
        frame = idle.at
        where = frame.location(self.root) if frame is not None else "an unknown place"
        return (
            f"slotguard: a {idle.library} connection was idle in transaction for "
            f"{idle.idle_for:.1f} s {threshold}, until the statement at {where} "
            f"in thread {idle.thread}\n"
            f"Stack of the statement that ended the wait (most recent call last):\n"
            f"{idle.stack.format(self.root)}"
        )

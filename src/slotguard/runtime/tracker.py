"""Who holds which connection, since when, taken where; and which transaction idles.

The library hooks (``slotguard.runtime.hooks``) report events to the hub:
a connection taken or returned, a statement done inside a transaction, a
transaction active again or over. The hub captures the taking stack once and
hands the event to every started :class:`Tracker`; with none started, the hooks
return at once.

A tracker keeps what is out now and answers from it: :meth:`Tracker.checked_out`
(oldest first), :meth:`Tracker.longest`, :meth:`Tracker.idle_transactions` and a
JSON-ready :meth:`Tracker.summary` for a health endpoint. The answers are
snapshots (frozen values); the bookkeeping behind them is private and cheap.

Keys: a pool's slot is keyed by what the pool keeps for it while it is out
(SQLAlchemy's connection record, asyncpg's holder, the psycopg connection
itself); a transaction by the driver's connection.

A direct connection (``asyncpg.connect``, ``psycopg.connect``,
``psycopg2.connect``) ends when it is closed or when it is garbage-collected
(its driver closes it then). A pooled connection whose object is collected
without being returned stays out: the pool (psycopg_pool) counts it as out for
good, and the tracker says so (``lost``).
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from slotguard.runtime.errors import internal_error
from slotguard.runtime.kind import Kind
from slotguard.runtime.stack import (
    DEFAULT_DEPTH,
    Frame,
    Raw,
    Stack,
    capture,
    capture_outside_pools,
    capture_raw,
    coroutine_stack,
    frame_stack,
)

InTransaction = Callable[[], bool]
"""Whether a connection still has a transaction open (asked by the production timer)."""


@dataclass(frozen=True, slots=True)
class Checkout:
    """A connection out of its pool, or a direct connection open, at one moment."""

    library: str
    """The library it came from: sqlalchemy, asyncpg, psycopg_pool, psycopg2, psycopg."""
    what: str
    """What it is, for messages: "asyncpg pool connection", "psycopg connection", ..."""
    held_for: float
    """Seconds since it was taken, when this snapshot was made."""
    stack: Stack
    """The project frames that took it, innermost first."""
    thread: str
    owner: str | None
    """Who took it, when someone says (the pytest plugin names the test or fixture)."""
    pooled: bool
    lost: bool = False
    """Garbage-collected without being returned: its pool counts it as out for good."""
    created: Stack | None = None
    """For a connection an ORM session took: the stack that created the session."""
    abandoned: bool = False
    """Never returned; its pool's own end (asyncpg's ``terminate``, psycopg2's
    ``closeall``) closed it. ``held_for`` is then how long it was out."""

    @property
    def taken_at(self) -> Frame | None:
        return self.stack.taken_at


@dataclass(frozen=True, slots=True)
class IdleTransaction:
    """A transaction that waited between two statements (or before its end) past the threshold."""

    library: str
    idle_for: float
    """Seconds it has idled (so far, when ``ongoing``)."""
    ongoing: bool
    """Still idle when this snapshot was made; otherwise the wait has ended."""
    stack: Stack
    """Ongoing: where the code holding the transaction is now, which is what it
    waits on (the HTTP call, the sleep); empty when that code is the one asking.
    Ended: the statement, or the commit, that ended the wait."""
    thread: str
    owner: str | None

    @property
    def at(self) -> Frame | None:
        """The innermost frame of :attr:`stack`."""
        return self.stack.taken_at


class _Held:
    """The bookkeeping of one checkout (mutable, private; :class:`Checkout` is its snapshot).

    Made on every checkout, hence slotted and small: what is the same for every
    checkout of a hook lives in its :class:`Kind`, the stack is kept as its bare
    frames and the thread as its identifier, both made readable only when shown.
    """

    __slots__ = (
        "created",
        "kind",
        "lost",
        "owner",
        "pool",
        "ref",
        "since",
        "stack",
        "thread",
        "warned",
    )

    def __init__(
        self,
        kind: Kind,
        since: float,
        stack: Raw,
        thread: int,
        owner: str | None,
        pool: int | None,
        ref: weakref.ref[Any] | None,
        created: Stack | None,
    ) -> None:
        self.kind = kind
        self.since = since
        self.stack = stack
        self.thread = thread
        self.owner = owner
        self.pool = pool
        self.ref = ref
        self.created = created
        self.warned = False
        self.lost = False

    def closed(self) -> bool:
        """A direct connection closed since it was taken (asked lazily)."""
        is_closed = self.kind.is_closed
        if self.kind.pooled or is_closed is None or self.ref is None:
            return False
        connection = self.ref()
        if connection is None:
            return True
        try:
            return is_closed(connection)
        except Exception:
            return False

    def snapshot(self, now: float, abandoned: bool = False) -> Checkout:
        return Checkout(
            library=self.kind.library,
            what=self.kind.what,
            held_for=now - self.since,
            stack=Stack(self.stack),
            thread=thread_name(self.thread),
            owner=self.owner,
            pooled=self.kind.pooled,
            lost=self.lost,
            created=self.created,
            abandoned=abandoned,
        )


class _Idle:
    """An open wait between statements of a transaction (private).

    Nothing is captured when a wait begins: a statement ends thousands of times
    a second and most waits are short. The thread (and the asyncio task, if
    any) that ran the statement is kept, so that the stack of a wait that turns
    out long is read when it is reported: where that code is then.
    """

    __slots__ = ("library", "owner", "probe", "since", "task", "thread", "warned")

    def __init__(
        self,
        library: str,
        since: float,
        thread: int,
        task: weakref.ref[Any] | None,
        owner: str | None,
        probe: InTransaction | None,
    ) -> None:
        self.library = library
        self.since = since
        self.thread = thread
        self.task = task
        self.owner = owner
        self.probe = probe
        self.warned = False

    def snapshot(self, now: float, depth: int) -> IdleTransaction:
        return IdleTransaction(
            library=self.library,
            idle_for=now - self.since,
            ongoing=True,
            stack=self.waiting(depth),
            thread=thread_name(self.thread),
            owner=self.owner,
        )

    def ended(self, now: float, stack: Stack) -> IdleTransaction:
        return IdleTransaction(
            library=self.library,
            idle_for=now - self.since,
            ongoing=False,
            stack=stack,
            thread=thread_name(self.thread),
            owner=self.owner,
        )

    def waiting(self, depth: int) -> Stack:
        """Where the code that ran the last statement is now."""
        task = self.task() if self.task is not None else None
        if task is not None and not task.done():
            return coroutine_stack(task.get_coro(), depth)
        if self.thread == threading.get_ident():
            return Stack()
        frame = sys._current_frames().get(self.thread)
        return frame_stack(frame, depth) if frame is not None else Stack()


_lost_keys = itertools.count()


class Tracker:
    """Connections checked out and transactions idling, as the library hooks report them.

    Start it with :meth:`start` (or ``with tracker:``; ``slotguard.runtime.track``
    and ``install`` do it for you) and stop it with :meth:`stop`, which takes the
    hooks out again once no tracker is left.

    ``idle_threshold`` (seconds) turns on the detection of transactions idle
    between statements; None leaves the per-statement hooks out.
    """

    def __init__(
        self,
        *,
        depth: int = DEFAULT_DEPTH,
        idle_threshold: float | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        if idle_threshold is not None and idle_threshold <= 0:
            raise ValueError(f"idle_threshold must be positive, not {idle_threshold}")
        self.depth = depth
        self.idle_threshold = idle_threshold
        self.owner: str | None = None
        """Who is running now; each checkout records it (the pytest plugin sets the test)."""
        self._lock = threading.Lock()
        self._held: dict[Hashable, _Held] = {}
        self._idle: dict[int, _Idle] = {}
        self._idled: deque[tuple[IdleTransaction, bool]] = deque(maxlen=1000)
        """Finished waits past the threshold, oldest first (bounded), and whether
        the timer already logged them while they were going on."""
        self._abandoned: deque[Checkout] = deque(maxlen=1000)
        """Connections never returned whose pool closed them (bounded)."""
        self._unleaked: deque[Checkout] = deque(maxlen=1000)
        """Connections logged as held too long that came back since (for the timer)."""
        self._dead: deque[tuple[Hashable, weakref.ref[Any]]] = deque()
        """Connections collected while out, to settle at the next read or write: a
        weakref callback may run inside any allocation, even under our own lock."""

    # -- starting and stopping ----------------------------------------------------

    def start(self) -> Tracker:
        HUB.add(self)
        return self

    def stop(self) -> None:
        HUB.remove(self)

    @property
    def started(self) -> bool:
        return self in HUB.trackers

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- reading ------------------------------------------------------------------

    def checked_out(self, owner: str | None = None) -> list[Checkout]:
        """What is out now, held longest first; only ``owner``'s when given."""
        now = time.monotonic()
        held: list[_Held] = []
        with self._lock:
            self._settle()
            for key, entry in list(self._held.items()):
                if entry.closed():
                    if self._held.get(key) is entry:
                        del self._held[key]
                elif owner is None or entry.owner == owner:
                    held.append(entry)
        return sorted((entry.snapshot(now) for entry in held), key=lambda c: -c.held_for)

    def abandoned(self, owner: str | None = None) -> list[Checkout]:
        """Connections never returned that their pool closed when it ended, oldest
        first; only ``owner``'s when given."""
        with self._lock:
            return [c for c in self._abandoned if owner is None or c.owner == owner]

    def longest(self, count: int = 5) -> list[Checkout]:
        """The ``count`` connections held longest (for a health endpoint)."""
        return self.checked_out()[:count]

    def idle_transactions(self, owner: str | None = None) -> list[IdleTransaction]:
        """Transactions idle past the threshold: those still waiting, then those
        whose wait ended, oldest first; only ``owner``'s when given."""
        threshold = self.idle_threshold
        if threshold is None:
            return []
        now = time.monotonic()
        with self._lock:
            waiting = [
                idle
                for idle in list(self._idle.values())
                if now - idle.since >= threshold and (owner is None or idle.owner == owner)
            ]
            ended = [idle for idle, _ in self._idled if owner is None or idle.owner == owner]
        ongoing = [idle.snapshot(now, self.depth) for idle in waiting]
        return sorted(ongoing, key=lambda i: -i.idle_for) + ended

    def summary(self, count: int = 5) -> dict[str, Any]:
        """A JSON-ready view: how many connections are out, per library, and the
        ``count`` held longest with where they were taken."""
        held = self.checked_out()
        by_library: dict[str, int] = {}
        for checkout in held:
            by_library[checkout.library] = by_library.get(checkout.library, 0) + 1
        return {
            "checked_out": len(held),
            "by_library": by_library,
            "longest": [_describe(checkout) for checkout in held[:count]],
            "idle_in_transaction": sum(1 for idle in self.idle_transactions() if idle.ongoing),
            "abandoned": len(self.abandoned()),
        }

    def forget(self, owner: str) -> None:
        """Disown what ``owner`` took and drop its finished waits, once they have
        been reported (the pytest plugin, after each test): a later test of the
        same name (a rerun) starts clean."""
        with self._lock:
            for held in list(self._held.values()):
                if held.owner == owner:
                    held.owner = None
            for idle in list(self._idle.values()):
                if idle.owner == owner:
                    idle.owner = None
            kept = [(idle, logged) for idle, logged in self._idled if idle.owner != owner]
            self._idled.clear()
            self._idled.extend(kept)
            still = [checkout for checkout in self._abandoned if checkout.owner != owner]
            self._abandoned.clear()
            self._abandoned.extend(still)

    # -- events from the hub --------------------------------------------------------

    # The hot path (the hub's ``taken`` and ``returned``) writes ``_held`` without
    # the lock: a single store into or removal from a dict is atomic, and the
    # readers above copy under the lock what they read.

    def _settle_now(self) -> None:
        with self._lock:
            self._settle()

    def _abandon(self, key: Hashable) -> None:
        """The pool closed a connection that was never returned."""
        held = self._held.pop(key, None)
        if held is not None:
            self._abandoned.append(held.snapshot(time.monotonic(), abandoned=True))

    def _pool_closed(self, pool: int) -> None:
        """A pool closed every connection it handed out (psycopg2's ``closeall``)."""
        now = time.monotonic()
        for key, held in list(self._held.items()):
            if held.pool == pool and self._held.pop(key, None) is held:
                self._abandoned.append(held.snapshot(now, abandoned=True))

    def _collected(self, key: Hashable, ref: weakref.ref[Any]) -> None:
        self._dead.append((key, ref))

    def _settle(self) -> None:
        """Apply the collections noted by weakref callbacks (caller holds the lock)."""
        while self._dead:
            key, ref = self._dead.popleft()
            held = self._held.get(key)
            if held is None or held.ref is not ref:
                continue
            del self._held[key]
            if held.kind.pooled:
                held.lost = True
                held.ref = None
                self._held[("lost", next(_lost_keys))] = held

    def _statement_done(self, key: int, idle: _Idle) -> None:
        self._idle[key] = idle

    def _transaction_active(self, key: int, now: float) -> None:
        """A statement starts, or the transaction ends: the wait, if any, is over;
        a long one is kept with the stack that ended it."""
        idle = self._idle.pop(key, None)
        threshold = self.idle_threshold
        if idle is None or threshold is None or now - idle.since < threshold:
            return
        self._idled.append((idle.ended(now, capture(self.depth)), idle.warned))

    # -- for the production timer ----------------------------------------------------

    def _overdue(self, threshold: float) -> tuple[list[Checkout], list[IdleTransaction]]:
        """Pooled connections held past ``threshold`` and transactions idle past the
        idle threshold, each returned once (marked as warned)."""
        now = time.monotonic()
        holders: list[Checkout] = []
        idles: list[_Idle] = []
        with self._lock:
            self._settle()
            for held in list(self._held.values()):
                if held.kind.pooled and not held.warned and now - held.since >= threshold:
                    held.warned = True
                    holders.append(held.snapshot(now))
            idle_threshold = self.idle_threshold
            if idle_threshold is not None:
                for idle in list(self._idle.values()):
                    if not idle.warned and now - idle.since >= idle_threshold:
                        idle.warned = True
                        idles.append(idle)
        still = [idle.snapshot(now, self.depth) for idle in idles if _still_in_transaction(idle)]
        return holders, still

    def _ended_waits(self) -> tuple[list[IdleTransaction], list[Checkout]]:
        """Finished waits past the threshold that were not logged while they went
        on, and connections logged as held too long that came back; each once."""
        ended: list[IdleTransaction] = []
        while self._idled:
            idle, logged = self._idled.popleft()
            if not logged:
                ended.append(idle)
        unleaked: list[Checkout] = []
        while self._unleaked:
            unleaked.append(self._unleaked.popleft())
        return ended, unleaked


def _still_in_transaction(idle: _Idle) -> bool:
    if idle.probe is None:
        return True
    try:
        return idle.probe()
    except Exception:
        return True


def _describe(checkout: Checkout) -> dict[str, Any]:
    frame = checkout.taken_at
    return {
        "library": checkout.library,
        "what": checkout.what,
        "held_seconds": round(checkout.held_for, 3),
        "taken_at": frame.location() if frame is not None else None,
        "thread": checkout.thread,
        "lost": checkout.lost,
        "stack": [
            {"file": f.filename, "line": f.line, "function": f.function}
            for f in checkout.stack.frames()
        ],
    }


class _Hub:
    """The one place the hooks report to; it fans events out to the started trackers.

    The hooks are installed when the first tracker starts and taken out when
    the last one stops; the per-statement hooks only while some tracker
    watches for idle transactions.
    """

    def __init__(self) -> None:
        self.trackers: tuple[Tracker, ...] = ()
        self.depth = DEFAULT_DEPTH
        self.watching_idle = False
        self._refs: dict[Hashable, weakref.ref[Any]] = {}
        self._lock = threading.RLock()
        self._installed: dict[str, list[Callable[[], None]]] = {"checkouts": [], "statements": []}

    def add(self, tracker: Tracker) -> None:
        with self._lock:
            if tracker in self.trackers:
                return
            self._sync((*self.trackers, tracker))

    def remove(self, tracker: Tracker) -> None:
        with self._lock:
            if tracker not in self.trackers:
                return
            self._sync(tuple(t for t in self.trackers if t is not tracker))

    def _sync(self, trackers: tuple[Tracker, ...]) -> None:
        from slotguard.runtime.hooks import install_checkouts, install_statements

        want_checkouts = bool(trackers)
        want_statements = any(t.idle_threshold is not None for t in trackers)
        self.depth = max((t.depth for t in trackers), default=DEFAULT_DEPTH)
        if want_checkouts and not self._installed["checkouts"]:
            self._installed["checkouts"] = install_checkouts(self)
        if want_statements and not self._installed["statements"]:
            self._installed["statements"] = install_statements(self)
        self.trackers = trackers
        self.watching_idle = want_statements
        if not want_statements:
            _undo(self._installed["statements"])
        if not want_checkouts:
            _undo(self._installed["checkouts"])

    # -- events -----------------------------------------------------------------

    def taken(
        self,
        key: Hashable,
        kind: Kind,
        pool: object = None,
        connection: object = None,
        stack: Stack | None = None,
        created: Stack | None = None,
    ) -> None:
        """A connection was taken. ``connection`` is watched by weak reference: a
        direct one ends when it is collected, a pooled one is then lost."""
        trackers = self.trackers
        if not trackers:
            return
        try:
            raw = capture_raw(self.depth, start=2) if stack is None else stack.raw
            now = time.monotonic()
            thread = threading.get_ident()
            ref = self._weak(connection, key) if connection is not None else None
            pool_id = id(pool) if pool is not None else None
            for tracker in trackers:
                if tracker._dead:
                    tracker._settle_now()
                tracker._held[key] = _Held(
                    kind, now, raw, thread, tracker.owner, pool_id, ref, created
                )
        except Exception as error:
            internal_error("a checkout", error)

    def _weak(self, connection: object, key: Hashable) -> weakref.ref[Any] | None:
        """The weak reference that watches ``connection``: one per connection, made
        at its first checkout (a pool hands the same connections out again)."""
        ref = self._refs.get(key)
        if ref is not None and ref() is connection:
            return ref

        def collected(ref: weakref.ref[Any]) -> None:
            """The connection was collected (any thread, at any allocation)."""
            if self._refs.get(key) is ref:
                del self._refs[key]
            for tracker in self.trackers:
                tracker._collected(key, ref)

        try:
            ref = self._refs[key] = weakref.ref(connection, collected)
        except TypeError:  # a type without weak references: watched by id only
            return None
        return ref

    def direct_stack(self) -> Stack | None:
        """The taking stack of a direct connection, or None when a pool opens it."""
        if not self.trackers:
            return None
        try:
            return capture_outside_pools(self.depth, start=2)
        except Exception as error:
            internal_error("a connect", error)
            return None

    def returned(self, key: Hashable) -> None:
        try:
            for tracker in self.trackers:
                held = tracker._held.pop(key, None)
                if held is not None and held.warned:
                    tracker._unleaked.append(held.snapshot(time.monotonic()))
        except Exception as error:
            internal_error("a return", error)

    def abandoned(self, key: Hashable) -> None:
        """A pool's end closed the connection of ``key``, which was never returned."""
        try:
            for tracker in self.trackers:
                tracker._abandon(key)
        except Exception as error:
            internal_error("a pool's end", error)

    def pool_closed(self, pool: object) -> None:
        try:
            for tracker in self.trackers:
                tracker._pool_closed(id(pool))
        except Exception as error:
            internal_error("a pool's close", error)

    def statement_done(self, key: int, library: str, probe: InTransaction | None = None) -> None:
        """A statement ended inside a transaction: a wait may begin here."""
        trackers = self.trackers
        if not trackers or not self.watching_idle:
            return
        try:
            now = time.monotonic()
            thread = threading.get_ident()
            task = _current_task()
            for tracker in trackers:
                if tracker.idle_threshold is not None:
                    idle = _Idle(library, now, thread, task, tracker.owner, probe)
                    tracker._statement_done(key, idle)
        except Exception as error:
            internal_error("a statement's end", error)

    def transaction_active(self, key: int) -> None:
        """A statement starts or the transaction ends: any wait on ``key`` is over."""
        trackers = self.trackers
        if not trackers:
            return
        try:
            now = time.monotonic()
            for tracker in trackers:
                if tracker.idle_threshold is not None:
                    tracker._transaction_active(key, now)
        except Exception as error:
            internal_error("a statement's start", error)


def thread_name(ident: int) -> str:
    """The name of a thread (kept by identifier, named when shown), or its
    identifier once it has ended."""
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"thread {ident} (ended)"


def _current_task() -> weakref.ref[Any] | None:
    """The asyncio task running here, if any (weakly: a task outlives no wait)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    loop = asyncio.events._get_running_loop()
    if loop is None:
        return None
    task = asyncio.current_task(loop)
    return weakref.ref(task) if task is not None else None


def _undo(undos: list[Callable[[], None]]) -> None:
    while undos:
        undos.pop()()


HUB = _Hub()

"""SQLAlchemy, sync and asyncio: the pool's events, and the engine's for statements.

Listening on the ``Pool`` and ``Engine`` classes reaches every pool and engine,
those created before the tracker started too, and an ``AsyncEngine`` through
its ``sync_engine``. A pool slot is keyed by its connection record, which the
pool keeps while the connection is out:

- ``checkout`` takes it, ``checkin`` gives it back (also when SQLAlchemy
  returns a connection whose fairy was garbage-collected);
- ``detach`` gives the slot back to the pool, and the detached DBAPI
  connection is tracked as a direct one until ``close_detached``;
- ``invalidate`` and ``close`` end the connection's transaction, if any (the
  slot itself comes back with the ``checkin`` that follows).

Statements (when idle transactions are watched): ``before_cursor_execute``
ends a wait, ``after_cursor_execute`` inside a transaction begins one,
``commit`` and ``rollback`` end it, for every driver but psycopg, whose own
hooks watch it already.

A session takes its connection at its first statement, so its checkout's stack
is that statement's; the stack that created the session is kept beside it
(``Session.__init__`` records it), since that is the line a leak is about: the
session created in a dependency's generator, at import, or in the request that
handed it to a background task. The checkout finds its session among the
frames of ``sqlalchemy/orm/session.py`` between the pool and the caller.
"""

from __future__ import annotations

import functools
import os
import sys
import weakref
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from slotguard.runtime.hooks.patch import Patch, apply_all, internal_error, load
from slotguard.runtime.kind import Kind
from slotguard.runtime.stack import PROJECT, Stack, capture, classify, note_pool_code

if TYPE_CHECKING:
    from slotguard.runtime.tracker import _Hub

LIBRARY = "sqlalchemy"
POOLED = Kind(LIBRARY, "SQLAlchemy pool connection")
DETACHED = Kind(LIBRARY, "SQLAlchemy detached connection", pooled=False)
Undo = Callable[[], None]


def install_checkouts(hub: _Hub) -> list[Undo]:
    if load("sqlalchemy") is None:
        return []
    pool_module = load("sqlalchemy.pool")
    event = load("sqlalchemy.event")
    if pool_module is None or event is None:
        return []
    session_module = load("sqlalchemy.orm.session")
    if session_module is None:
        return []
    note_pool_code([os.path.dirname(pool_module.__file__)])
    created: weakref.WeakKeyDictionary[Any, Stack] = weakref.WeakKeyDictionary()
    session_code = session_module.__file__

    def session_init(original: Any) -> Any:
        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            if hub.trackers:
                try:
                    created[self] = capture(hub.depth)
                except Exception as error:
                    internal_error("a session's creation", error)

        return __init__

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        try:
            origin = _session_origin(sys._getframe(1), session_code, created) if created else None
        except Exception as error:
            internal_error("a session's checkout", error)
            origin = None
        hub.taken(id(record), POOLED, created=origin)

    def checkin(dbapi_connection: Any, record: Any) -> None:
        hub.returned(id(record))
        if dbapi_connection is not None and hub.watching_idle:
            hub.transaction_active(_driver_key(dbapi_connection))

    def detach(dbapi_connection: Any, record: Any) -> None:
        hub.returned(id(record))
        hub.taken(id(dbapi_connection), DETACHED, connection=dbapi_connection)

    def close_detached(dbapi_connection: Any) -> None:
        hub.returned(id(dbapi_connection))

    def connection_ended(dbapi_connection: Any, record: Any, *rest: Any) -> None:
        if dbapi_connection is not None and hub.watching_idle:
            hub.transaction_active(_driver_key(dbapi_connection))

    undos = apply_all(
        "SQLAlchemy sessions", lambda: [Patch(session_module.Session, "__init__", session_init)]
    )
    return undos + _listen(  # each guards itself: the hub's events never raise
        event,
        pool_module.Pool,
        {
            "checkout": checkout,
            "checkin": checkin,
            "detach": detach,
            "close_detached": close_detached,
            "invalidate": connection_ended,
            "close": connection_ended,
        },
    )


def install_statements(hub: _Hub) -> list[Undo]:
    if load("sqlalchemy") is None:
        return []
    engine_module = load("sqlalchemy.engine")
    event = load("sqlalchemy.event")
    if engine_module is None or event is None:
        return []

    def before_cursor_execute(conn: Any, *rest: Any) -> None:
        driver = conn.connection.driver_connection
        if not _psycopg(driver):
            hub.transaction_active(id(driver))

    def after_cursor_execute(conn: Any, *rest: Any) -> None:
        driver = conn.connection.driver_connection
        if not _psycopg(driver) and conn.in_transaction() and not _autocommit(conn):
            hub.statement_done(id(driver), LIBRARY)

    def transaction_ends(conn: Any, *rest: Any) -> None:
        driver = conn.connection.driver_connection
        if not _psycopg(driver):
            hub.transaction_active(id(driver))

    return _listen(
        event,
        engine_module.Engine,
        {
            name: _guarded(name, listener)
            for name, listener in (
                ("before_cursor_execute", before_cursor_execute),
                ("after_cursor_execute", after_cursor_execute),
                ("commit", transaction_ends),
                ("rollback", transaction_ends),
            )
        },
    )


def _listen(event: Any, target: Any, listeners: dict[str, Callable[..., None]]) -> list[Undo]:
    undos: list[Undo] = []
    for name, listener in listeners.items():
        event.listen(target, name, listener)
        undos.append(functools.partial(event.remove, target, name, listener))
    return undos


def _guarded(name: str, listener: Callable[..., None]) -> Callable[..., None]:
    def guarded(*args: Any) -> None:
        try:
            listener(*args)
        except Exception as error:
            internal_error(f"SQLAlchemy {name} event", error)

    guarded.__name__ = f"slotguard_{name}"
    return guarded


def _session_origin(
    frame: FrameType | None, session_code: str, created: weakref.WeakKeyDictionary[Any, Stack]
) -> Stack | None:
    """The creation stack of the session whose statement is checking out, found
    among the session's own frames below the first project frame."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename == session_code:
            owner = frame.f_locals.get("self")
            try:
                stack = created.get(owner)
            except TypeError:  # not a session (a transaction, ...): cannot be a key
                stack = None
            if stack is not None:
                return stack
        elif classify(filename) == PROJECT:
            return None
        frame = frame.f_back
    return None


def _driver_key(dbapi_connection: Any) -> int:
    """The driver's own connection under SQLAlchemy's adapter (asyncio dialects)."""
    try:
        return id(getattr(dbapi_connection, "driver_connection", dbapi_connection))
    except Exception:  # a broken adapter: its own id still keys its transaction
        return id(dbapi_connection)


_by_psycopg: dict[type, bool] = {}


def _psycopg(driver_connection: Any) -> bool:
    """psycopg's own hooks watch its transactions (and see the server's status):
    SQLAlchemy's events would only repeat them."""
    kind = type(driver_connection)
    known = _by_psycopg.get(kind)
    if known is None:
        known = _by_psycopg[kind] = kind.__module__.split(".", 1)[0] == "psycopg"
    return known


def _autocommit(conn: Any) -> bool:
    """An AUTOCOMMIT connection says it is in a transaction that the server never began."""
    is_autocommit = getattr(conn, "_is_autocommit_isolation", None)
    return bool(is_autocommit()) if is_autocommit is not None else False

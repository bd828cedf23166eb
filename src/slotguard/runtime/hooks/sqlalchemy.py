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
from slotguard.runtime.stack import PROJECT, Stack, capture, classify, note_pool_code

if TYPE_CHECKING:
    from slotguard.runtime.tracker import _Hub

LIBRARY = "sqlalchemy"
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
        origin = _session_origin(sys._getframe(1), session_code, created)
        hub.taken(id(record), LIBRARY, "SQLAlchemy pool connection", created=origin)

    def checkin(dbapi_connection: Any, record: Any) -> None:
        hub.returned(id(record))
        if dbapi_connection is not None:
            hub.transaction_active(_driver_key(dbapi_connection))

    def detach(dbapi_connection: Any, record: Any) -> None:
        hub.returned(id(record))
        hub.taken(
            id(dbapi_connection),
            LIBRARY,
            "SQLAlchemy detached connection",
            pooled=False,
            connection=dbapi_connection,
        )

    def close_detached(dbapi_connection: Any) -> None:
        hub.returned(id(dbapi_connection))

    def connection_ended(dbapi_connection: Any, record: Any, *rest: Any) -> None:
        if dbapi_connection is not None:
            hub.transaction_active(_driver_key(dbapi_connection))

    undos = apply_all(
        "SQLAlchemy sessions", lambda: [Patch(session_module.Session, "__init__", session_init)]
    )
    return undos + _listen(
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
        hub.transaction_active(_connection_key(conn))

    def after_cursor_execute(conn: Any, *rest: Any) -> None:
        if conn.in_transaction() and not _autocommit(conn):
            hub.statement_done(_connection_key(conn), LIBRARY)

    def transaction_ends(conn: Any, *rest: Any) -> None:
        hub.transaction_active(_connection_key(conn))

    return _listen(
        event,
        engine_module.Engine,
        {
            "before_cursor_execute": before_cursor_execute,
            "after_cursor_execute": after_cursor_execute,
            "commit": transaction_ends,
            "rollback": transaction_ends,
        },
    )


def _listen(event: Any, target: Any, listeners: dict[str, Callable[..., None]]) -> list[Undo]:
    undos: list[Undo] = []
    for name, listener in listeners.items():
        guarded = _guarded(name, listener)
        event.listen(target, name, guarded)
        undos.append(functools.partial(event.remove, target, name, guarded))
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
    return id(getattr(dbapi_connection, "driver_connection", dbapi_connection))


def _connection_key(conn: Any) -> int:
    return id(conn.connection.driver_connection)


def _autocommit(conn: Any) -> bool:
    """An AUTOCOMMIT connection says it is in a transaction that the server never began."""
    is_autocommit = getattr(conn, "_is_autocommit_isolation", None)
    return bool(is_autocommit()) if is_autocommit is not None else False

"""psycopg 3 and psycopg_pool: pool checkouts, direct connections, and
transactions idle between statements.

psycopg_pool: ``getconn`` takes (``connection()`` calls it too) and ``putconn``
gives back, on ``ConnectionPool`` and ``AsyncConnectionPool``. The slot is
keyed by the connection itself; a connection collected without ``putconn`` is
lost to its pool for good, which the tracker reports.

Direct connections: ``Connection.connect`` and ``AsyncConnection.connect`` (and
``psycopg.connect``, the same classmethod). psycopg_pool and SQLAlchemy open
their connections through them too; the stack, captured when the call is made,
tells those apart (see :func:`slotguard.runtime.stack.capture`).

Transactions: after each ``execute``/``executemany``, ``commit``, ``rollback``
and the end of a ``transaction()`` block, the connection's transaction status
says whether a wait inside a transaction begins; before each statement the
wait, if any, ends.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from slotguard.runtime.hooks.patch import (
    Patch,
    apply_all,
    internal_error,
    load,
    mark_coroutine_function,
)
from slotguard.runtime.kind import Kind
from slotguard.runtime.stack import Stack, note_pool_code

if TYPE_CHECKING:
    from slotguard.runtime.tracker import _Hub

Undo = Callable[[], None]
DIRECT = Kind("psycopg", "psycopg connection", pooled=False, is_closed=lambda c: bool(c.closed))
POOLED = Kind("psycopg_pool", "psycopg_pool connection")
_INTRANS = 2
_INERROR = 3
"""libpq's PQTRANS_INTRANS and PQTRANS_INERROR: idle in a transaction (or an aborted one)."""


def install_checkouts(hub: _Hub) -> list[Undo]:
    undos: list[Undo] = []
    psycopg = load("psycopg")
    if psycopg is not None:
        undos.extend(_install_connect(hub, psycopg))
    psycopg_pool = load("psycopg_pool")
    if psycopg_pool is not None:
        note_pool_code([os.path.dirname(psycopg_pool.__file__)])
        undos.extend(_install_pools(hub, psycopg_pool))
    return undos


def _install_connect(hub: _Hub, psycopg: Any) -> list[Undo]:
    def sync_connect(original: Any) -> Any:
        function = original.__func__

        @functools.wraps(function)
        def connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
            stack = hub.direct_stack()
            connection = function(cls, *args, **kwargs)
            if stack is not None:
                _opened(hub, connection, stack)
            return connection

        return classmethod(connect)

    def async_connect(original: Any) -> Any:
        function = original.__func__

        @functools.wraps(function)
        def connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
            stack = hub.direct_stack()
            coroutine = function(cls, *args, **kwargs)
            return coroutine if stack is None else _opened_later(hub, coroutine, stack)

        return classmethod(mark_coroutine_function(connect))

    def patches() -> list[Patch]:
        connection = Patch(psycopg.Connection, "connect", sync_connect)
        return [
            connection,
            Patch(psycopg.AsyncConnection, "connect", async_connect),
            Patch(
                psycopg,
                "connect",
                lambda _: connection.replacement.__get__(None, psycopg.Connection),
            ),
        ]

    return apply_all("psycopg", patches)


def _opened(hub: _Hub, connection: Any, stack: Stack) -> None:
    hub.taken(id(connection), DIRECT, connection=connection, stack=stack)


async def _opened_later(hub: _Hub, coroutine: Coroutine[Any, Any, Any], stack: Stack) -> Any:
    connection = await coroutine
    _opened(hub, connection, stack)
    return connection


def _install_pools(hub: _Hub, psycopg_pool: Any) -> list[Undo]:
    def getconn(original: Any) -> Any:
        @functools.wraps(original)
        def getconn(self: Any, timeout: float | None = None) -> Any:
            connection = original(self, timeout)
            hub.taken(id(connection), POOLED, pool=self, connection=connection)
            return connection

        return getconn

    def putconn(original: Any) -> Any:
        @functools.wraps(original)
        def putconn(self: Any, connection: Any) -> None:
            original(self, connection)
            hub.returned(id(connection))

        return putconn

    def async_getconn(original: Any) -> Any:
        @functools.wraps(original)
        async def getconn(self: Any, timeout: float | None = None) -> Any:
            connection = await original(self, timeout)
            hub.taken(id(connection), POOLED, pool=self, connection=connection)
            return connection

        return getconn

    def async_putconn(original: Any) -> Any:
        @functools.wraps(original)
        async def putconn(self: Any, connection: Any) -> None:
            await original(self, connection)
            hub.returned(id(connection))

        return putconn

    return apply_all(
        "psycopg_pool",
        lambda: [
            Patch(psycopg_pool.ConnectionPool, "getconn", getconn),
            Patch(psycopg_pool.ConnectionPool, "putconn", putconn),
            Patch(psycopg_pool.AsyncConnectionPool, "getconn", async_getconn),
            Patch(psycopg_pool.AsyncConnectionPool, "putconn", async_putconn),
        ],
    )


def install_statements(hub: _Hub) -> list[Undo]:
    psycopg = load("psycopg")
    if psycopg is None:
        return []

    probes: dict[int, Callable[[], bool]] = {}
    """One probe per connection, made at its first transaction, gone with it."""

    def settled(connection: Any) -> None:
        """After an operation: a wait begins if a transaction is still open."""
        key = id(connection)
        try:
            open_transaction = connection.pgconn.transaction_status in (_INTRANS, _INERROR)
        except Exception as error:
            internal_error("psycopg transaction status", error)
            return
        if open_transaction:
            probe = probes.get(key)
            if probe is None:
                probe = probes[key] = _probe(connection, probes, key)
            hub.statement_done(key, "psycopg", probe)
        else:
            hub.transaction_active(key)

    def statement(original: Any) -> Any:
        @functools.wraps(original)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            connection = self.connection
            hub.transaction_active(id(connection))
            try:
                return original(self, *args, **kwargs)
            finally:
                settled(connection)

        return run

    def async_statement(original: Any) -> Any:
        @functools.wraps(original)
        async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            connection = self.connection
            hub.transaction_active(id(connection))
            try:
                return await original(self, *args, **kwargs)
            finally:
                settled(connection)

        return run

    def ending(original: Any) -> Any:
        @functools.wraps(original)
        def end(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, *args, **kwargs)
            finally:
                settled(self)

        return end

    def async_ending(original: Any) -> Any:
        @functools.wraps(original)
        async def end(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await original(self, *args, **kwargs)
            finally:
                settled(self)

        return end

    def block_end(original: Any) -> Any:
        @functools.wraps(original)
        def __exit__(self: Any, *args: Any) -> Any:
            try:
                return original(self, *args)
            finally:
                settled(self.connection)

        return __exit__

    def async_block_end(original: Any) -> Any:
        @functools.wraps(original)
        async def __aexit__(self: Any, *args: Any) -> Any:
            try:
                return await original(self, *args)
            finally:
                settled(self.connection)

        return __aexit__

    def patches() -> list[Patch]:
        cursor, async_cursor = psycopg.Cursor, psycopg.AsyncCursor
        connection, async_connection = psycopg.Connection, psycopg.AsyncConnection
        return [
            Patch(cursor, "execute", statement),
            Patch(cursor, "executemany", statement),
            Patch(async_cursor, "execute", async_statement),
            Patch(async_cursor, "executemany", async_statement),
            Patch(connection, "commit", ending),
            Patch(connection, "rollback", ending),
            Patch(connection, "close", ending),
            Patch(async_connection, "commit", async_ending),
            Patch(async_connection, "rollback", async_ending),
            Patch(async_connection, "close", async_ending),
            Patch(psycopg.Transaction, "__exit__", block_end),
            Patch(psycopg.AsyncTransaction, "__aexit__", async_block_end),
        ]

    return apply_all("psycopg transactions", patches)


def _probe(connection: Any, probes: dict[int, Callable[[], bool]], key: int) -> Callable[[], bool]:
    """Whether the connection still has its transaction open (asked from the timer
    thread); forgotten in ``probes`` when the connection is collected."""
    ref = weakref.ref(connection, lambda _: probes.pop(key, None))

    def in_transaction() -> bool:
        live = ref()
        return live is not None and live.pgconn.transaction_status in (_INTRANS, _INERROR)

    return in_transaction

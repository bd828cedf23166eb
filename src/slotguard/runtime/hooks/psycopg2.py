"""psycopg2: its pools (``psycopg2.pool``) and direct connections.

``SimpleConnectionPool`` binds ``getconn``/``putconn``/``closeall`` to the very
functions ``AbstractConnectionPool`` defines as ``_getconn``/``_putconn``/
``_closeall``, and ``ThreadedConnectionPool`` calls those under its lock, so
both names are replaced and each call is seen once. ``closeall`` closes the
connections still out too: the tracker reports those as abandoned.

``psycopg2.connect`` opens a direct connection (the pools call it too, which
the stack tells apart). psycopg2's connection is a C type whose ``close`` cannot
be replaced; a direct connection ends when the tracker, asked, finds it closed
or collected.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slotguard.runtime.hooks.patch import Patch, apply_all, load
from slotguard.runtime.kind import Kind
from slotguard.runtime.stack import note_pool_code

if TYPE_CHECKING:
    from slotguard.runtime.tracker import _Hub

LIBRARY = "psycopg2"
POOLED = Kind(LIBRARY, "psycopg2 pool connection")
DIRECT = Kind(LIBRARY, "psycopg2 connection", pooled=False, is_closed=lambda c: bool(c.closed))
Undo = Callable[[], None]


def install_checkouts(hub: _Hub) -> list[Undo]:
    psycopg2 = load("psycopg2")
    if psycopg2 is None:
        return []
    pool_module = load("psycopg2.pool")
    if pool_module is None:
        return []
    note_pool_code([pool_module.__file__])

    def getconn(original: Any) -> Any:
        @functools.wraps(original)
        def getconn(self: Any, key: Any = None) -> Any:
            connection = original(self, key)
            hub.taken(id(connection), POOLED, pool=self)
            return connection

        return getconn

    def putconn(original: Any) -> Any:
        @functools.wraps(original)
        def putconn(self: Any, conn: Any, key: Any = None, close: bool = False) -> None:
            original(self, conn, key, close)
            hub.returned(id(conn))

        return putconn

    def closeall(original: Any) -> Any:
        @functools.wraps(original)
        def closeall(self: Any) -> None:
            original(self)
            hub.pool_closed(self)

        return closeall

    def connect(original: Any) -> Any:
        @functools.wraps(original)
        def connect(*args: Any, **kwargs: Any) -> Any:
            stack = hub.direct_stack()
            connection = original(*args, **kwargs)
            if stack is not None:
                hub.taken(id(connection), DIRECT, connection=connection, stack=stack)
            return connection

        return connect

    def patches() -> list[Patch]:
        abstract, simple = pool_module.AbstractConnectionPool, pool_module.SimpleConnectionPool
        found = [
            Patch(abstract, "_getconn", getconn),
            Patch(abstract, "_putconn", putconn),
            Patch(abstract, "_closeall", closeall),
        ]
        replacements = {patch.original: patch.replacement for patch in found}
        for name in ("getconn", "putconn", "closeall"):
            found.append(Patch(simple, name, lambda original: replacements[original]))
        return [*found, Patch(psycopg2, "connect", connect)]

    return apply_all(LIBRARY, patches)


def install_statements(hub: _Hub) -> list[Undo]:
    """psycopg2's transactions are not watched for idling (SQLAlchemy's and psycopg's are)."""
    return []

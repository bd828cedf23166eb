"""asyncpg: pool checkouts, and direct connections.

A pool slot is keyed by the pool's connection holder. ``Pool._acquire`` is
what both ``await pool.acquire()`` and ``async with pool.acquire()`` await, so
the stack captured there, in the caller's task, reaches the caller. A holder
comes back in ``PoolConnectionHolder._release``, however it was given back:
``Pool.release``, the context manager's exit, or its connection closing while
out (``_release_on_close``). The code closing it (``conn.close()``, a lost
connection) returns the slot; the pool's own end (``Pool.terminate()``, a
failed ``Pool.close()``) does not, and the tracker reports the connection as
abandoned: a test whose pool fixture terminates the pool at teardown still
sees the connection it never released.

``asyncpg.connect`` (the package attribute that applications call) opens a
direct connection; pools call ``asyncpg.connection.connect``, which is left
alone. The replacement captures the stack when it is called, not when its
coroutine runs: SQLAlchemy calls it from inside its pool, in a greenlet, and
awaits the coroutine elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from slotguard.runtime.hooks.patch import Patch, apply_all, load, mark_coroutine_function
from slotguard.runtime.kind import Kind
from slotguard.runtime.stack import Stack, note_pool_code

if TYPE_CHECKING:
    from slotguard.runtime.tracker import _Hub

LIBRARY = "asyncpg"
POOLED = Kind(LIBRARY, "asyncpg pool connection")
DIRECT = Kind(LIBRARY, "asyncpg connection", pooled=False, is_closed=lambda c: bool(c.is_closed()))
Undo = Callable[[], None]


def install_checkouts(hub: _Hub) -> list[Undo]:
    asyncpg = load("asyncpg")
    if asyncpg is None:
        return []
    pool_module = load("asyncpg.pool")
    if pool_module is None:
        return []
    note_pool_code([pool_module.__file__])

    def acquire(original: Any) -> Any:
        @functools.wraps(original)
        async def _acquire(self: Any, timeout: Any) -> Any:
            proxy = await original(self, timeout)
            hub.taken(id(proxy._holder), POOLED)
            return proxy

        return _acquire

    def release(original: Any) -> Any:
        @functools.wraps(original)
        def _release(self: Any) -> None:
            original(self)
            hub.returned(id(self))

        return _release

    def release_on_close(original: Any) -> Any:
        @functools.wraps(original)
        def _release_on_close(self: Any) -> None:
            if self._in_use is not None and (self._pool._closed or self._pool._closing):
                hub.abandoned(id(self))
            original(self)

        return _release_on_close

    def connect(original: Any) -> Any:
        @functools.wraps(original)
        def connect(*args: Any, **kwargs: Any) -> Any:
            stack = hub.direct_stack()
            coroutine = original(*args, **kwargs)
            return coroutine if stack is None else _opened(hub, coroutine, stack)

        return mark_coroutine_function(connect)

    return apply_all(
        LIBRARY,
        lambda: [
            Patch(pool_module.Pool, "_acquire", acquire),
            Patch(pool_module.PoolConnectionHolder, "_release", release),
            Patch(pool_module.PoolConnectionHolder, "_release_on_close", release_on_close),
            Patch(asyncpg, "connect", connect),
        ],
    )


def install_statements(hub: _Hub) -> list[Undo]:
    """asyncpg's transactions are not watched for idling (SQLAlchemy's and psycopg's are)."""
    return []


async def _opened(hub: _Hub, coroutine: Coroutine[Any, Any, Any], stack: Stack) -> Any:
    connection = await coroutine
    hub.taken(id(connection), DIRECT, connection=connection, stack=stack)
    return connection

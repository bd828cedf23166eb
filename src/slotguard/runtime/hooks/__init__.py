"""The hooks into each database library: where a connection is taken and given
back, and where a transaction's statements run.

One module per library. Each offers ``install_checkouts(hub)`` and
``install_statements(hub)``; both return the undo functions of what they
installed (nothing when the library is not installed). SQLAlchemy is hooked
through its own event API; the others by replacing a few methods on their
classes (:class:`~slotguard.runtime.hooks.patch.Patch`), which are put back
exactly as they were when the last tracker stops.

A hook never raises into the application: an error inside slotguard's
bookkeeping is logged once and the library's own call goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from slotguard.runtime.hooks import asyncpg, psycopg, psycopg2, sqlalchemy

if TYPE_CHECKING:
    from slotguard.runtime.tracker import _Hub

Undo = Callable[[], None]
LIBRARIES = (sqlalchemy, asyncpg, psycopg, psycopg2)


def install_checkouts(hub: _Hub) -> list[Undo]:
    undos: list[Undo] = []
    for library in LIBRARIES:
        undos.extend(library.install_checkouts(hub))
    return undos


def install_statements(hub: _Hub) -> list[Undo]:
    undos: list[Undo] = []
    for library in LIBRARIES:
        undos.extend(library.install_statements(hub))
    return undos

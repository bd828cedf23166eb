"""The words the resource model is written in: kinds of resource, types, calls.

The catalog (``catalog.py``) and the user's ``[tool.slotguard.resources]``
configuration are both expressed with these values, so rules query one model.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Kind(enum.Enum):
    """What holding a value of a type means for the connection pool."""

    POOL = "pool"
    """Long-lived owner of many connections (asyncpg Pool, SQLAlchemy Engine)."""
    POOLED_CONNECTION = "pooled connection"
    """A connection checked out of a pool; goes back with the pool's release."""
    CONNECTION = "connection"
    """A direct connection to the server; must be closed."""
    SESSION = "session"
    """An ORM session; holds a pooled connection from its first query until closed."""
    ENGINE_CONNECTION = "engine connection"
    """A connection checked out of an engine (``engine.connect()``)."""
    FACTORY = "session factory"
    """Not a resource itself: calling it creates a session."""
    TRANSACTION = "transaction"
    """A transaction context (``session.begin()``, ``conn.transaction()``)."""

    @property
    def is_resource(self) -> bool:
        """Whether a value of this kind must be released by whoever holds it."""
        return self not in (Kind.FACTORY, Kind.TRANSACTION)

    @property
    def is_short_lived(self) -> bool:
        """Sessions and connections belong to a unit of work; pools live long."""
        return self in (
            Kind.POOLED_CONNECTION,
            Kind.CONNECTION,
            Kind.SESSION,
            Kind.ENGINE_CONNECTION,
        )


@dataclass(frozen=True, slots=True)
class Method:
    """A method that, called on a value of some type, produces another value."""

    name: str
    produces: str
    awaited: bool | None = None
    """True: the value exists once the call is awaited; False: the call itself
    produces it; None: either (sync and async twins share the table row)."""
    context_manager_only: bool = False
    """The call returns a context manager: nothing is held until it is entered."""
    context_manager: str | None = None
    """The method to use in the context-manager form, when it is another one
    (``getconn`` → ``with pool.connection() as conn``)."""


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A type the model knows, and how a value of it is released."""

    name: str
    kind: Kind
    library: str
    annotations: tuple[str, ...] = ()
    """Qualified names that denote this type in an annotation."""
    release_methods: tuple[str, ...] = ()
    """Methods on the value that release it: ``conn.close()``."""
    returned_by: tuple[str, ...] = ()
    """Methods on its pool that take it back: ``pool.release(conn)``."""
    with_releases: bool = True
    """Whether ``with <acquisition> as x`` releases it when the block ends."""
    with_note: str = "its context manager does not release it"
    """Why ``with`` does not release it, when it does not."""
    closing_form: bool = False
    """The context-manager form to write is ``contextlib.closing(...)``:
    its own ``with`` releases only in some versions of its library."""
    with_since: str = ""
    """The oldest release whose ``with`` releases it (``sqlalchemy>=1.4``),
    when older ones lack the context manager: a fix writes ``with`` only for
    a project whose declared versions all have it, else
    ``contextlib.closing(...)``."""
    release_awaited: bool = True
    """For an asynchronous type: its release method is a coroutine that
    releases it (``await pool.close()``). False where it is a plain call
    that only starts closing (aiopg's ``pool.close()``, then
    ``await pool.wait_closed()``)."""
    with_commits: bool = False
    """Its context-manager form commits the transaction when the block ends
    without an exception (psycopg), where ``close()`` or giving it back to
    its pool rolls it back: the ``with`` does more than release it."""
    methods: tuple[Method, ...] = ()
    calling_produces: str | None = None
    """For factories: the type a call of the value produces (``SessionLocal()``)."""
    transaction_methods: tuple[str, ...] = ()
    """Methods that open a transaction region on it (``session.begin()``)."""
    context_manager_form: str = ""
    """How to write the acquisition as a context manager, for messages and fixes."""
    is_async: bool = False
    """Entered with ``async with``, released with ``await``."""
    reclaimed_when_unreferenced: bool = False
    """CPython closes it as soon as nothing refers to it: its destructor closes
    the socket (or gives it back to its pool), and nothing else (a pool's
    bookkeeping, a reference cycle) keeps it alive. Left open on a normal
    exit, it is closed when the function's frame goes; on an exception path
    the traceback keeps the frame, and the connection, as long as anyone
    keeps the exception. Measured with the garbage collector off:
    psycopg2, psycopg (sync and async), asyncpg's ``connect`` and
    SQLAlchemy's ``raw_connection``; not SQLAlchemy's sessions and
    ``engine.connect()`` (a transaction and its connection refer to each
    other) nor anything a pool hands out."""

    @property
    def is_registry(self) -> bool:
        """A scoped-session registry: its ``remove()`` ends only the current
        unit's session, and its sessions are bound when it is configured."""
        return self.release_methods == ("remove",)

    def method(self, name: str) -> Method | None:
        for method in self.methods:
            if method.name == name:
                return method
        return None


@dataclass(frozen=True, slots=True)
class Constructor:
    """A function or class whose call produces a value of a known type."""

    callee: str
    produces: str
    awaited: bool | None = False
    context_manager_only: bool = False
    bound_by: tuple[str, ...] = ()
    """Arguments that give the value a database to talk to (a keyword name,
    or ``"0"`` for the first positional argument). When set and none is
    passed, the value holds no connection: a ``Session()`` without a bind."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """A set of types and constructors; the built-in one and the user's merge."""

    types: tuple[ResourceType, ...] = ()
    constructors: tuple[Constructor, ...] = ()
    releasing_functions: tuple[str, ...] = ()
    """Functions that release the resource passed as their first argument."""
    owner_classes: tuple[str, ...] = ()
    """Classes that take ownership of a resource passed to their constructor."""
    external_calls: tuple[str, ...] = field(default=())
    """Qualified-name patterns of slow external I/O (SG4)."""

    def merged(self, other: Catalog) -> Catalog:
        return Catalog(
            types=self.types + other.types,
            constructors=self.constructors + other.constructors,
            releasing_functions=self.releasing_functions + other.releasing_functions,
            owner_classes=self.owner_classes + other.owner_classes,
            external_calls=self.external_calls + other.external_calls,
        )

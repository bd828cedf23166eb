"""What the database libraries are: the table of SPEC section 1, as data.

Every rule asks this table (through ``slotguard.model.Model``) whether a call
acquires something, what it acquired and how that is released. Nothing else in
slotguard spells out a library's names.

Type names are slotguard's own; ``annotations`` lists the qualified names user
code writes for them. Sync and async twins (``Session``/``AsyncSession``) are
separate types, because one is entered with ``with`` and the other with
``async with``.
"""

from __future__ import annotations

from slotguard.model.vocabulary import Catalog, Constructor, Kind, Method, ResourceType

_ASYNCPG = (
    ResourceType(
        name="asyncpg.Pool",
        kind=Kind.POOL,
        library="asyncpg",
        annotations=("asyncpg.Pool", "asyncpg.pool.Pool"),
        release_methods=("close", "terminate"),
        methods=(Method("acquire", "asyncpg.PoolConnection", awaited=True),),
        context_manager_form="async with asyncpg.create_pool(...) as pool",
        is_async=True,
    ),
    ResourceType(
        name="asyncpg.PoolConnection",
        kind=Kind.POOLED_CONNECTION,
        library="asyncpg",
        annotations=("asyncpg.pool.PoolConnectionProxy",),
        returned_by=("release",),
        transaction_methods=("transaction",),
        context_manager_form="async with pool.acquire() as conn",
        is_async=True,
    ),
    ResourceType(
        name="asyncpg.Connection",
        kind=Kind.CONNECTION,
        library="asyncpg",
        annotations=("asyncpg.Connection", "asyncpg.connection.Connection"),
        release_methods=("close", "terminate"),
        with_releases=False,
        with_note="an asyncpg connection is not a context manager; close it in `finally`",
        transaction_methods=("transaction",),
        is_async=True,
        reclaimed_when_unreferenced=True,
    ),
)

_PSYCOPG = (
    ResourceType(
        name="psycopg.Connection",
        kind=Kind.CONNECTION,
        library="psycopg",
        annotations=("psycopg.Connection", "psycopg.connection.Connection"),
        release_methods=("close",),
        transaction_methods=("transaction",),
        context_manager_form="with psycopg.connect(...) as conn",
        with_commits=True,
        reclaimed_when_unreferenced=True,
    ),
    ResourceType(
        name="psycopg.AsyncConnection",
        kind=Kind.CONNECTION,
        library="psycopg",
        annotations=("psycopg.AsyncConnection", "psycopg.connection_async.AsyncConnection"),
        release_methods=("close",),
        transaction_methods=("transaction",),
        context_manager_form="async with await psycopg.AsyncConnection.connect(...) as conn",
        with_commits=True,
        is_async=True,
        reclaimed_when_unreferenced=True,
    ),
    ResourceType(
        name="psycopg_pool.ConnectionPool",
        kind=Kind.POOL,
        library="psycopg_pool",
        annotations=(
            "psycopg_pool.ConnectionPool",
            "psycopg_pool.NullConnectionPool",
            "psycopg_pool.pool.ConnectionPool",
        ),
        release_methods=("close",),
        methods=(
            Method(
                "getconn",
                "psycopg_pool.PoolConnection",
                awaited=False,
                context_manager="connection",
            ),
            Method("connection", "psycopg_pool.PoolConnection", context_manager_only=True),
        ),
        context_manager_form="with ConnectionPool(...) as pool",
    ),
    ResourceType(
        name="psycopg_pool.AsyncConnectionPool",
        kind=Kind.POOL,
        library="psycopg_pool",
        annotations=(
            "psycopg_pool.AsyncConnectionPool",
            "psycopg_pool.AsyncNullConnectionPool",
            "psycopg_pool.pool_async.AsyncConnectionPool",
        ),
        release_methods=("close",),
        methods=(
            Method(
                "getconn",
                "psycopg_pool.AsyncPoolConnection",
                awaited=True,
                context_manager="connection",
            ),
            Method("connection", "psycopg_pool.AsyncPoolConnection", context_manager_only=True),
        ),
        context_manager_form="async with AsyncConnectionPool(...) as pool",
        is_async=True,
    ),
    ResourceType(
        name="psycopg_pool.PoolConnection",
        kind=Kind.POOLED_CONNECTION,
        library="psycopg_pool",
        returned_by=("putconn",),
        transaction_methods=("transaction",),
        context_manager_form="with pool.connection() as conn",
        with_commits=True,
    ),
    ResourceType(
        name="psycopg_pool.AsyncPoolConnection",
        kind=Kind.POOLED_CONNECTION,
        library="psycopg_pool",
        returned_by=("putconn",),
        transaction_methods=("transaction",),
        context_manager_form="async with pool.connection() as conn",
        with_commits=True,
        is_async=True,
    ),
)

_PSYCOPG2 = (
    ResourceType(
        name="psycopg2.Connection",
        kind=Kind.CONNECTION,
        library="psycopg2",
        annotations=("psycopg2.extensions.connection",),
        release_methods=("close",),
        with_releases=False,
        with_note="psycopg2's connection context manager only commits or rolls back",
        reclaimed_when_unreferenced=True,
    ),
    ResourceType(
        name="psycopg2.Pool",
        kind=Kind.POOL,
        library="psycopg2",
        annotations=(
            "psycopg2.pool.SimpleConnectionPool",
            "psycopg2.pool.ThreadedConnectionPool",
            "psycopg2.pool.AbstractConnectionPool",
        ),
        release_methods=("closeall",),
        methods=(Method("getconn", "psycopg2.PoolConnection", awaited=False),),
        with_releases=False,
    ),
    ResourceType(
        name="psycopg2.PoolConnection",
        kind=Kind.POOLED_CONNECTION,
        library="psycopg2",
        returned_by=("putconn",),
        with_releases=False,
        with_note="a connection from `getconn()` goes back to the pool only through `putconn()`",
    ),
)


def _aio_library(library: str) -> tuple[ResourceType, ...]:
    """aiopg, aiomysql and asyncmy share asyncpg's pool shape."""
    return (
        ResourceType(
            name=f"{library}.Pool",
            kind=Kind.POOL,
            library=library,
            annotations=(f"{library}.Pool", f"{library}.pool.Pool"),
            release_methods=("close", "terminate"),
            methods=(Method("acquire", f"{library}.PoolConnection", awaited=True),),
            context_manager_form=f"async with {library}.create_pool(...) as pool",
            is_async=True,
            release_awaited=False,
        ),
        ResourceType(
            name=f"{library}.PoolConnection",
            kind=Kind.POOLED_CONNECTION,
            library=library,
            returned_by=("release",),
            context_manager_form="async with pool.acquire() as conn",
            is_async=True,
        ),
        ResourceType(
            name=f"{library}.Connection",
            kind=Kind.CONNECTION,
            library=library,
            annotations=(f"{library}.Connection", f"{library}.connection.Connection"),
            release_methods=("close", "ensure_closed"),
            context_manager_form=f"async with {library}.connect(...) as conn",
            is_async=True,
        ),
        ResourceType(
            name=f"{library}.sa.Engine",
            kind=Kind.POOL,
            library=library,
            annotations=(f"{library}.sa.Engine", f"{library}.sa.engine.Engine"),
            release_methods=("close", "terminate"),
            methods=(Method("acquire", f"{library}.PoolConnection", awaited=True),),
            is_async=True,
            release_awaited=False,
        ),
    )


def _sqlalchemy(prefix: str, is_async: bool) -> tuple[ResourceType, ...]:
    """SQLAlchemy's sync types (``prefix`` "") and async twins ("Async")."""
    a = prefix
    asyncio = "sqlalchemy.ext.asyncio"
    engine_names: tuple[str, ...]
    connection_names: tuple[str, ...]
    session_names: tuple[str, ...]
    factory_names: tuple[str, ...]
    scoped_names: tuple[str, ...]
    if is_async:
        engine_names = (f"{asyncio}.AsyncEngine", f"{asyncio}.engine.AsyncEngine")
        connection_names = (f"{asyncio}.AsyncConnection", f"{asyncio}.engine.AsyncConnection")
        session_names = (
            f"{asyncio}.AsyncSession",
            f"{asyncio}.session.AsyncSession",
            "sqlmodel.ext.asyncio.session.AsyncSession",
        )
        factory_names = (f"{asyncio}.async_sessionmaker", f"{asyncio}.session.async_sessionmaker")
        scoped_names = (
            f"{asyncio}.async_scoped_session",
            f"{asyncio}.scoping.async_scoped_session",
        )
    else:
        engine_names = (
            "sqlalchemy.Engine",
            "sqlalchemy.engine.Engine",
            "sqlalchemy.engine.base.Engine",
        )
        connection_names = (
            "sqlalchemy.Connection",
            "sqlalchemy.engine.Connection",
            "sqlalchemy.engine.base.Connection",
        )
        session_names = (
            "sqlalchemy.orm.Session",
            "sqlalchemy.orm.session.Session",
            "sqlmodel.Session",
            "sqlmodel.orm.session.Session",
        )
        factory_names = ("sqlalchemy.orm.sessionmaker", "sqlalchemy.orm.session.sessionmaker")
        scoped_names = ("sqlalchemy.orm.scoped_session", "sqlalchemy.orm.scoping.scoped_session")
    session_cm = (
        "async with AsyncSession(...) as session" if is_async else ("with Session(...) as session")
    )
    return (
        ResourceType(
            name=f"sqlalchemy.{a}Engine",
            kind=Kind.POOL,
            library="sqlalchemy",
            annotations=engine_names,
            release_methods=("dispose",),
            methods=(
                Method("connect", f"sqlalchemy.{a}Connection", awaited=is_async),
                *(
                    ()
                    if is_async
                    else (Method("raw_connection", "sqlalchemy.RawConnection", awaited=False),)
                ),
            ),
            transaction_methods=("begin",),
            with_releases=False,
            is_async=is_async,
        ),
        ResourceType(
            name=f"sqlalchemy.{a}Connection",
            kind=Kind.ENGINE_CONNECTION,
            library="sqlalchemy",
            annotations=connection_names,
            release_methods=("close", "invalidate"),
            transaction_methods=("begin", "begin_nested"),
            context_manager_form=("async " if is_async else "") + "with engine.connect() as conn",
            is_async=is_async,
        ),
        ResourceType(
            name=f"sqlalchemy.{a}Session",
            kind=Kind.SESSION,
            library="sqlalchemy",
            annotations=session_names,
            release_methods=("close",),
            transaction_methods=("begin", "begin_nested"),
            context_manager_form=session_cm,
            # A session is a context manager from SQLAlchemy 1.4 on.
            with_since="" if is_async else "sqlalchemy>=1.4",
            is_async=is_async,
        ),
        ResourceType(
            name=f"sqlalchemy.{a.lower()}{'_' if a else ''}sessionmaker",
            kind=Kind.FACTORY,
            library="sqlalchemy",
            annotations=factory_names,
            calling_produces=f"sqlalchemy.{a}Session",
            transaction_methods=("begin",),
            is_async=is_async,
        ),
        ResourceType(
            name=f"sqlalchemy.{a.lower()}{'_' if a else ''}scoped_session",
            kind=Kind.SESSION,
            library="sqlalchemy",
            annotations=scoped_names,
            release_methods=("remove",),
            with_releases=False,
            with_note="a scoped_session registry is released by `remove()`",
            transaction_methods=("begin", "begin_nested"),
            is_async=is_async,
        ),
    )


_SQLALCHEMY = (
    *_sqlalchemy("", is_async=False),
    *_sqlalchemy("Async", is_async=True),
    ResourceType(
        name="sqlalchemy.RawConnection",
        kind=Kind.ENGINE_CONNECTION,
        library="sqlalchemy",
        release_methods=("close", "invalidate"),
        # The pool's proxy returns the connection to the pool when it is
        # garbage-collected, and nothing but the caller refers to it.
        reclaimed_when_unreferenced=True,
        # The proxy became a context manager that closes (checks in) the
        # connection only in SQLAlchemy 2.0.47 and 2.1.0b2; before, its `with`
        # raises TypeError. So `with` is not reported (it releases, or fails at
        # once), but the form written is `contextlib.closing`.
        closing_form=True,
        with_since="sqlalchemy>=2.0.47",
    ),
)

_DATABASES = (
    ResourceType(
        name="databases.Database",
        kind=Kind.POOL,
        library="databases",
        annotations=("databases.Database", "databases.core.Database"),
        release_methods=("disconnect",),
        methods=(Method("connection", "databases.Connection", context_manager_only=True),),
        transaction_methods=("transaction",),
        context_manager_form="async with Database(...) as database",
        is_async=True,
    ),
    ResourceType(
        name="databases.Connection",
        kind=Kind.ENGINE_CONNECTION,
        library="databases",
        annotations=("databases.core.Connection",),
        transaction_methods=("transaction",),
        context_manager_form="async with database.connection() as conn",
        is_async=True,
    ),
)

_DJANGO = (ResourceType(name="django.Atomic", kind=Kind.TRANSACTION, library="django"),)

TYPES: tuple[ResourceType, ...] = (
    _ASYNCPG
    + _PSYCOPG
    + _PSYCOPG2
    + _aio_library("aiopg")
    + _aio_library("aiomysql")
    + _aio_library("asyncmy")
    + _SQLALCHEMY
    + _DATABASES
    + _DJANGO
)


def _aio_constructors(library: str) -> tuple[Constructor, ...]:
    return (
        Constructor(f"{library}.create_pool", f"{library}.Pool", awaited=True),
        Constructor(f"{library}.pool.create_pool", f"{library}.Pool", awaited=True),
        Constructor(f"{library}.connect", f"{library}.Connection", awaited=True),
        Constructor(f"{library}.connection.connect", f"{library}.Connection", awaited=True),
        Constructor(f"{library}.sa.create_engine", f"{library}.sa.Engine", awaited=True),
        Constructor(f"{library}.sa.engine.create_engine", f"{library}.sa.Engine", awaited=True),
    )


def _sqlalchemy_constructors() -> tuple[Constructor, ...]:
    asyncio = "sqlalchemy.ext.asyncio"
    sync = (
        ("sqlalchemy.create_engine", "sqlalchemy.Engine"),
        ("sqlalchemy.engine.create_engine", "sqlalchemy.Engine"),
        ("sqlalchemy.engine_from_config", "sqlalchemy.Engine"),
        ("sqlmodel.create_engine", "sqlalchemy.Engine"),
        ("sqlalchemy.orm.Session", "sqlalchemy.Session"),
        ("sqlalchemy.orm.session.Session", "sqlalchemy.Session"),
        ("sqlmodel.Session", "sqlalchemy.Session"),
        ("sqlmodel.orm.session.Session", "sqlalchemy.Session"),
        ("sqlalchemy.orm.sessionmaker", "sqlalchemy.sessionmaker"),
        ("sqlalchemy.orm.session.sessionmaker", "sqlalchemy.sessionmaker"),
        ("sqlalchemy.orm.scoped_session", "sqlalchemy.scoped_session"),
        ("sqlalchemy.orm.scoping.scoped_session", "sqlalchemy.scoped_session"),
    )
    async_ = (
        (f"{asyncio}.create_async_engine", "sqlalchemy.AsyncEngine"),
        (f"{asyncio}.engine.create_async_engine", "sqlalchemy.AsyncEngine"),
        (f"{asyncio}.async_engine_from_config", "sqlalchemy.AsyncEngine"),
        (f"{asyncio}.AsyncSession", "sqlalchemy.AsyncSession"),
        (f"{asyncio}.session.AsyncSession", "sqlalchemy.AsyncSession"),
        ("sqlmodel.ext.asyncio.session.AsyncSession", "sqlalchemy.AsyncSession"),
        (f"{asyncio}.async_sessionmaker", "sqlalchemy.async_sessionmaker"),
        (f"{asyncio}.session.async_sessionmaker", "sqlalchemy.async_sessionmaker"),
        (f"{asyncio}.async_scoped_session", "sqlalchemy.async_scoped_session"),
        (f"{asyncio}.scoping.async_scoped_session", "sqlalchemy.async_scoped_session"),
    )
    sessions = {"sqlalchemy.Session", "sqlalchemy.AsyncSession"}
    return tuple(
        Constructor(callee, produces, bound_by=_SESSION_BINDS if produces in sessions else ())
        for callee, produces in sync + async_
    )


_SESSION_BINDS = ("0", "bind", "binds")


CONSTRUCTORS: tuple[Constructor, ...] = (
    Constructor("asyncpg.create_pool", "asyncpg.Pool", awaited=True),
    Constructor("asyncpg.pool.create_pool", "asyncpg.Pool", awaited=True),
    Constructor("asyncpg.connect", "asyncpg.Connection", awaited=True),
    Constructor("asyncpg.connection.connect", "asyncpg.Connection", awaited=True),
    Constructor("psycopg.connect", "psycopg.Connection"),
    Constructor("psycopg.Connection.connect", "psycopg.Connection"),
    Constructor("psycopg.AsyncConnection.connect", "psycopg.AsyncConnection", awaited=True),
    Constructor("psycopg_pool.ConnectionPool", "psycopg_pool.ConnectionPool"),
    Constructor("psycopg_pool.NullConnectionPool", "psycopg_pool.ConnectionPool"),
    Constructor("psycopg_pool.AsyncConnectionPool", "psycopg_pool.AsyncConnectionPool"),
    Constructor("psycopg_pool.AsyncNullConnectionPool", "psycopg_pool.AsyncConnectionPool"),
    Constructor("psycopg2.connect", "psycopg2.Connection"),
    Constructor("psycopg2.pool.SimpleConnectionPool", "psycopg2.Pool"),
    Constructor("psycopg2.pool.ThreadedConnectionPool", "psycopg2.Pool"),
    *_aio_constructors("aiopg"),
    *_aio_constructors("aiomysql"),
    *_aio_constructors("asyncmy"),
    *_sqlalchemy_constructors(),
    Constructor("databases.Database", "databases.Database"),
    Constructor("django.db.transaction.atomic", "django.Atomic"),
)

DEPENDENCY_MARKERS = ("Depends", "Security", "Provide")
"""FastAPI's and Litestar's markers: ``Depends(get_db)`` injects what the
provider yields, so a parameter default or ``Annotated`` metadata calling one
of these names a dependency provider."""

AWAITABLE_WRAPPERS: dict[str, int] = {"asyncio.wait_for": 0, "asyncio.shield": 0}
"""Functions whose awaited result is what the awaitable they are given (by
position) produces: ``conn = await asyncio.wait_for(pool.acquire(), 5)``
acquires a connection (and the timeout is one more way to leave without
releasing it)."""

BORROWED_BINDS = frozenset({"alembic.op.get_bind", "alembic.context.get_bind"})
"""Calls that return a connection someone else holds: Alembic's migration
connection. A session bound to one borrows it and checks nothing out."""

CONNECTION_METHODS = frozenset({"connection", "get_connection"})
"""Methods that return the connection an object already holds
(``session.connection()``): a session bound to it borrows it."""

SERVERLESS_URL_SCHEMES = ("sqlite",)
"""Database URLs (``sqlite:///app.db``, ``sqlite+aiosqlite://``) whose engines
open a file or memory database: no server connection slot is held."""

CONNECTION_BIND_NAMES = ("conn", "bind")
"""Parts of a name the code gives a connection (``conn``, ``connection``,
``db_conn``, ``bind``), when nothing else tells what a session is bound to.
A name with ``engine`` in it is an engine's."""

CLOSED_STATE = ("closed", "is_closed")
"""Attributes and methods that tell whether a connection is already closed
(``conn.is_closed()``, ``conn.closed``): where they are true, it holds no
live connection (``if conn and not conn.is_closed(): await conn.close()``)."""

LOGGING_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
)
LOGGER_NAMES = frozenset({"logger", "log", "logging", "_logger", "_log", "LOGGER", "LOG"})
"""Calls of these methods on these objects do not raise: the logging module
reports a handler's failure itself instead of raising into the caller."""

EXPECTS_A_RAISE = frozenset(
    {
        "pytest.raises",
        "assertRaises",
        "assertRaisesRegex",
        "assertRaisesRegexp",
        "assertRaisesMessage",
    }
)
"""Context managers of tests whose block is expected to raise: what the
block tries to acquire is expected to fail, not to leak."""

RECLAIMING_HARNESSES: tuple[tuple[str, frozenset[Kind]], ...] = (
    ("sqlalchemy.testing", frozenset({Kind.SESSION, Kind.ENGINE_CONNECTION, Kind.POOL})),
)
"""Test harnesses that take back what each test leaves open: SQLAlchemy's
testing plugin (also used by third-party dialects' suites) closes every
session (``close_all_sessions()``), checks every pooled connection back in
after each test, and disposes the engines its ``testing_engine()`` made. A
module that imports one runs under it, so a session, connection or engine it
leaves open lives until the test ends, not longer."""

HOLDING_METHODS = frozenset({"cursor"})
"""Methods whose result keeps the object it was called on: a cursor refers to
its connection (``cursor.connection``), so ``return conn.cursor()`` hands
the connection to the caller, who closes it through the cursor."""

SELF_RETURNING_METHODS = frozenset({"execution_options"})
"""Methods that return the object they are called on: SQLAlchemy's
``conn.execution_options(...)`` sets options on the connection and returns it,
so ``conn = conn.execution_options(...)`` and ``with engine.connect()
.execution_options(...) as conn`` still hold (and release) the same connection."""

BUILTIN = Catalog(types=TYPES, constructors=CONSTRUCTORS)

COLUMN_FACTORIES = frozenset({"Column", "mapped_column", "column_property", "deferred"})
"""What declares a column attribute in a mapped class's body (SQLAlchemy's,
Flask-SQLAlchemy's ``db.Column``): an instance gives plain data for it.
``relationship()``, ``association_proxy()``, properties and the rest give
objects of the session, or anything."""
MAPPED_ANNOTATION = "Mapped"
"""``name: Mapped[int]`` (SQLAlchemy 2.0): a column unless its value is
something else (``relationship()``)."""
ENTITY_QUERIES = frozenset({"query"})
"""Session methods whose argument is the mapped class they load (``db.query(User)``)."""
ENTITY_GETTERS = frozenset({"get", "get_one"})
"""Session methods that load one instance of their first argument (``db.get(User, 1)``)."""
QUERY_REFINERS = frozenset(
    {
        "filter",
        "filter_by",
        "where",
        "order_by",
        "group_by",
        "having",
        "limit",
        "offset",
        "distinct",
        "join",
        "outerjoin",
        "options",
        "execution_options",
        "populate_existing",
        "yield_per",
        "all",
    }
)
"""Query methods that keep loading the same class (its rows, or a list of them)."""
QUERY_SINGLES = frozenset({"first", "one", "one_or_none"})
"""Query methods that give one instance (or None)."""

PATCHERS = frozenset({"unittest.mock.patch", "mock.patch"})
"""What replaces a name of another module for a test (``@patch("app.db.create_engine")``);
pytest-mock's ``mocker.patch`` too (``PATCHING_FIXTURES``)."""
PATCHING_FIXTURES = frozenset({"mocker"})

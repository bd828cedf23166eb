"""How pools live and how big they are: the knowledge the SG5 rules ask about.

Which decorators, methods, list attributes and constructor keywords register
a function as an application's startup or shutdown hook (FastAPI, Starlette,
aiohttp, Sanic, Litestar, Quart, ``atexit``); which calls bound the time of
what runs inside them; how many connections a pool can open, from which
keyword arguments and with which library defaults; and which pools can wait
forever for a connection. Rules query these tables; they do not spell out a
library's names themselves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Phase(enum.Enum):
    """When an application runs a hook."""

    STARTUP = "startup"
    SHUTDOWN = "shutdown"
    LIFESPAN = "lifespan"
    """A context manager or generator: what comes before its ``yield`` runs at
    startup, what comes after it at shutdown."""


EVENTS: dict[str, Phase] = {
    "startup": Phase.STARTUP,
    "shutdown": Phase.SHUTDOWN,
    "before_server_start": Phase.STARTUP,
    "after_server_start": Phase.STARTUP,
    "before_server_stop": Phase.SHUTDOWN,
    "after_server_stop": Phase.SHUTDOWN,
}
"""Event names passed to ``on_event`` (FastAPI, Starlette), ``listener`` and
``register_listener`` (Sanic), ``add_event_handler`` (Starlette)."""


@dataclass(frozen=True, slots=True)
class HookMethod:
    """``app.<name>``, used as a decorator or called with the hook function."""

    name: str
    phase: Phase | None
    """None: the phase is the event named by an argument (``EVENTS``)."""
    function_index: int = 0
    """Called as a method: the position of the hook function."""
    event_index: int = 0
    """For ``phase`` None: the position of the event name."""


HOOK_METHODS: tuple[HookMethod, ...] = (
    HookMethod("on_event", None),
    HookMethod("add_event_handler", None, function_index=1, event_index=0),
    HookMethod("listener", None, function_index=0, event_index=1),
    HookMethod("register_listener", None, function_index=0, event_index=1),
    HookMethod("before_server_start", Phase.STARTUP),
    HookMethod("after_server_start", Phase.STARTUP),
    HookMethod("before_server_stop", Phase.SHUTDOWN),
    HookMethod("after_server_stop", Phase.SHUTDOWN),
    HookMethod("before_serving", Phase.STARTUP),
    HookMethod("after_serving", Phase.SHUTDOWN),
    HookMethod("while_serving", Phase.LIFESPAN),
)
"""Hook registration by method name: the receivers (``app``, ``router``,
``bp``) are rarely typed, and these names are specific. A decorator with
arguments (``@app.on_event("startup")``, ``@app.listener("after_server_stop")``)
names its event first."""

SHUTDOWN_COUNTERPARTS: dict[tuple[str, str], str] = {("on_event", "startup"): "shutdown"}
"""A startup hook registered by a decorator method with its event, whose
handlers take no argument (Starlette, FastAPI), and the event a shutdown
handler registered the same way names (SG501's fix adds one)."""

HOOK_LISTS: dict[str, Phase] = {
    "on_startup": Phase.STARTUP,
    "on_shutdown": Phase.SHUTDOWN,
    "on_cleanup": Phase.SHUTDOWN,
    "cleanup_ctx": Phase.LIFESPAN,
    "lifespan": Phase.LIFESPAN,
}
"""Lists of hooks: ``app.on_startup.append(f)`` (aiohttp, Starlette routers),
and the same names as constructor keywords: ``Starlette(on_shutdown=[f])``,
``FastAPI(lifespan=f)``, ``Litestar(on_startup=[f], lifespan=[f])``."""

LIST_METHODS = ("append", "insert", "extend")
"""How a hook is added to one of ``HOOK_LISTS``."""

PROCESS_HOOKS: dict[str, Phase] = {"atexit.register": Phase.SHUTDOWN}
"""Functions that register a hook of the process (called, or as a decorator);
the hook is their first argument."""

CACHING_DECORATORS = frozenset(
    {
        "functools.lru_cache",
        "functools.cache",
        "functools.cached_property",
        "async_lru.alru_cache",
        "cachetools.cached",
        "lru_cache",
        "cache",
        "cached_property",
        "alru_cache",
    }
)
"""Decorators that keep what the function returns: a pool made by a function
decorated so is the cache's (created once per process, or once per instance
for ``cached_property``), not each caller's."""

CONTAINER_CONSTRUCTORS = frozenset(
    {
        "dict",
        "collections.defaultdict",
        "collections.OrderedDict",
        "weakref.WeakValueDictionary",
        "defaultdict",
        "OrderedDict",
        "WeakValueDictionary",
    }
)
"""Calls that make a module-level mapping a getter can cache pools in
(``_ENGINES: dict[str, AsyncEngine] = {}`` counts too)."""

CONTAINER_ANNOTATIONS = frozenset({"dict", "Dict", "MutableMapping", "Mapping", "defaultdict"})

RELEASE_METHOD_NAMES = frozenset(
    {
        "close",
        "aclose",
        "__exit__",
        "__aexit__",
        "__del__",
        "shutdown",
        "dispose",
        "disconnect",
        "stop",
        "teardown",
        "cleanup",
        "terminate",
        "release",
        "finalize",
        "destroy",
    }
)
"""Methods by which an object gives back what it owns; ``close_pool``,
``_dispose_engine`` and ``shutdown_db`` count by their first word."""

RELEASE_METHOD_PREFIXES = tuple(
    f"{name}_" for name in sorted(RELEASE_METHOD_NAMES) if "_" not in name
)


def is_release_method(name: str) -> bool:
    """Whether a method name says it releases what its object owns."""
    bare = name.lstrip("_") if not name.startswith("__") else name
    return bare in RELEASE_METHOD_NAMES or bare.startswith(RELEASE_METHOD_PREFIXES)


APPLICATION_STATE = ("state", "ctx")
"""``app.state.<name>`` (Starlette, FastAPI, Litestar), ``app.ctx.<name>`` (Sanic)."""

APPLICATION_MAPPINGS = ("app", "application", "config_dict")
"""Mappings that hold aiohttp's application state, ``app["pool"]``: a name
that is or ends with ``app``, or one of these."""

SAME_POOL_ATTRIBUTES = ("sync_engine",)
"""Attributes that reach the same pool: ``async_engine.sync_engine.dispose()``
disposes the pool of the SQLAlchemy ``AsyncEngine``."""

TIME_LIMITS = frozenset(
    {
        "asyncio.timeout",
        "asyncio.timeout_at",
        "asyncio.wait_for",
        "asyncio.timeouts.timeout",
        "asyncio.tasks.wait_for",
        "async_timeout.timeout",
        "async_timeout.timeout_at",
        "anyio.fail_after",
        "anyio.move_on_after",
        "trio.fail_after",
        "trio.move_on_after",
    }
)
"""Calls that bound the time of what runs inside them: ``async with
asyncio.timeout(5):`` around an acquisition, or ``asyncio.wait_for(acquisition, 5)``."""


# -- waiting for a connection (SG503) -----------------------------------------


@dataclass(frozen=True, slots=True)
class UnboundedAcquire:
    """A pool method that waits for a free connection with no time limit
    unless its call says otherwise."""

    type_name: str
    method: str
    keyword: str
    """The keyword argument that sets the limit; ``None`` as its value waits forever."""


UNBOUNDED_ACQUIRES: tuple[UnboundedAcquire, ...] = (
    UnboundedAcquire("asyncpg.Pool", "acquire", "timeout"),
)


@dataclass(frozen=True, slots=True)
class PoolTimeout:
    """A pool constructor's limit on how long an acquisition waits; passing
    ``None`` for it makes every acquisition wait forever."""

    constructors: tuple[str, ...]
    keyword: str
    default: float


POOL_TIMEOUTS: tuple[PoolTimeout, ...] = (
    PoolTimeout(
        (
            "sqlalchemy.create_engine",
            "sqlalchemy.engine.create_engine",
            "sqlmodel.create_engine",
            "sqlalchemy.ext.asyncio.create_async_engine",
            "sqlalchemy.ext.asyncio.engine.create_async_engine",
        ),
        "pool_timeout",
        30.0,
    ),
    PoolTimeout(
        (
            "psycopg_pool.ConnectionPool",
            "psycopg_pool.NullConnectionPool",
            "psycopg_pool.AsyncConnectionPool",
            "psycopg_pool.AsyncNullConnectionPool",
        ),
        "timeout",
        30.0,
    ),
)
"""psycopg_pool's ``getconn()`` and ``connection()`` without ``timeout`` use
the pool's, 30 seconds by default: they are bounded unless the pool says
``timeout=None``."""


# -- how many connections a pool can open (SG504) -----------------------------


@dataclass(frozen=True, slots=True)
class SizeTerm:
    """One keyword argument that counts toward a pool's largest size."""

    keyword: str
    default: int | None
    """The library's default; None when the argument is required, or when
    ``otherwise`` gives the value."""
    position: int | None = None
    """Its position, where the signature lets it be passed positionally."""
    unbounded: tuple[int, ...] = ()
    """Values that lift the limit (``max_overflow=-1``, ``maxsize=0``)."""
    otherwise: SizeTerm | None = None
    """The argument whose value it takes when not given (psycopg_pool's
    ``max_size`` defaults to ``min_size``)."""


@dataclass(frozen=True, slots=True)
class PoolClass:
    """A pool implementation chosen by a constructor keyword, and what it
    means for the pool's size."""

    names: tuple[str, ...]
    size: int | None
    """A fixed largest size, or None when it has no static bound."""
    keeps_connections: bool = True
    """False when it closes every connection as soon as it is returned: not
    disposing it leaves nothing open."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class PoolSizing:
    """How to read a pool's largest size from its constructor call."""

    constructors: tuple[str, ...]
    terms: tuple[SizeTerm, ...]
    """Summed: ``pool_size + max_overflow``."""
    class_keyword: str | None = None
    classes: tuple[PoolClass, ...] = ()
    elsewhere: str = ""
    """Why the call cannot tell the size, when it never can."""


_SQLALCHEMY_CLASSES = (
    PoolClass(
        ("sqlalchemy.pool.NullPool", "sqlalchemy.NullPool", "sqlalchemy.pool.impl.NullPool"),
        None,
        keeps_connections=False,
        note="NullPool: one connection per checkout, no limit",
    ),
    PoolClass(
        ("sqlalchemy.pool.StaticPool", "sqlalchemy.StaticPool", "sqlalchemy.pool.impl.StaticPool"),
        1,
        note="StaticPool",
    ),
    PoolClass(
        (
            "sqlalchemy.pool.AssertionPool",
            "sqlalchemy.AssertionPool",
            "sqlalchemy.pool.impl.AssertionPool",
        ),
        1,
        note="AssertionPool",
    ),
    PoolClass(
        (
            "sqlalchemy.pool.SingletonThreadPool",
            "sqlalchemy.SingletonThreadPool",
            "sqlalchemy.pool.impl.SingletonThreadPool",
        ),
        None,
        note="SingletonThreadPool: one connection per thread",
    ),
)

_SQLALCHEMY_TERMS = (
    SizeTerm("pool_size", 5),
    SizeTerm("max_overflow", 10, unbounded=(-1,)),
)


def _aio_sizing(library: str) -> PoolSizing:
    """aiopg, aiomysql and asyncmy: ``maxsize`` (10), 0 for no limit."""
    return PoolSizing(
        (
            f"{library}.create_pool",
            f"{library}.pool.create_pool",
            f"{library}.sa.create_engine",
            f"{library}.sa.engine.create_engine",
        ),
        (SizeTerm("maxsize", 10, unbounded=(0,)),),
    )


_PSYCOPG_MIN_SIZE = SizeTerm("min_size", 4)

POOL_SIZES: tuple[PoolSizing, ...] = (
    PoolSizing(
        (
            "sqlalchemy.create_engine",
            "sqlalchemy.engine.create_engine",
            "sqlmodel.create_engine",
            "sqlalchemy.ext.asyncio.create_async_engine",
            "sqlalchemy.ext.asyncio.engine.create_async_engine",
        ),
        _SQLALCHEMY_TERMS,
        class_keyword="poolclass",
        classes=_SQLALCHEMY_CLASSES,
    ),
    PoolSizing(
        ("asyncpg.create_pool", "asyncpg.pool.create_pool"),
        (SizeTerm("max_size", 10),),
    ),
    PoolSizing(
        ("psycopg_pool.ConnectionPool", "psycopg_pool.AsyncConnectionPool"),
        (SizeTerm("max_size", None, otherwise=_PSYCOPG_MIN_SIZE),),
    ),
    PoolSizing(
        ("psycopg_pool.NullConnectionPool", "psycopg_pool.AsyncNullConnectionPool"),
        (SizeTerm("max_size", None),),
    ),
    PoolSizing(
        ("psycopg2.pool.SimpleConnectionPool", "psycopg2.pool.ThreadedConnectionPool"),
        (SizeTerm("maxconn", None, position=1),),
    ),
    _aio_sizing("aiopg"),
    _aio_sizing("aiomysql"),
    _aio_sizing("asyncmy"),
    PoolSizing(("databases.Database",), (SizeTerm("max_size", 10),)),
    PoolSizing(
        (
            "sqlalchemy.engine_from_config",
            "sqlalchemy.ext.asyncio.async_engine_from_config",
        ),
        (),
        class_keyword="poolclass",
        classes=_SQLALCHEMY_CLASSES,
        elsewhere="the sizes come from the configuration",
    ),
)
"""Constructors whose largest pool size can be read from the call, or is
known to live elsewhere. ``databases.Database`` passes ``max_size`` to its
backend's pool, 10 by default for each of them."""


def sizing(constructor: str) -> PoolSizing | None:
    """How to read the size of a pool made by a qualified constructor."""
    return _SIZING_BY_CONSTRUCTOR.get(constructor)


_SIZING_BY_CONSTRUCTOR = {name: entry for entry in POOL_SIZES for name in entry.constructors}

_TIMEOUT_BY_CONSTRUCTOR = {name: entry for entry in POOL_TIMEOUTS for name in entry.constructors}


def pool_timeout(constructor: str) -> PoolTimeout | None:
    return _TIMEOUT_BY_CONSTRUCTOR.get(constructor)


def unbounded_acquire(type_name: str, method: str) -> UnboundedAcquire | None:
    for entry in UNBOUNDED_ACQUIRES:
        if entry.type_name == type_name and entry.method == method:
            return entry
    return None


COMMAND_DECORATORS = frozenset({"command", "group"})
"""Last names of decorators that make a function a command-line command run
once per process (``@click.command()``, ``@cli.command()``, Typer's
``@app.command()``, ``@click.group()``)."""

MIGRATION_RUNNERS = ("alembic.context",)
"""Importing one of these makes a module a migration run's environment
(Alembic's ``env.py``): its functions run once, in a process that ends."""

MANAGEMENT_COMMAND_BASES = frozenset({"BaseCommand", "AppCommand", "LabelCommand"})
"""Django's command classes: their ``handle`` runs once per process."""

SERVING_CALLS = frozenset(
    {"serve_forever", "run_forever", "run_until_complete", "start_polling", "run_polling"}
)
"""Calls that keep the process running (a server's or bot's loop)."""

"""The SG5 model: which functions are startup, shutdown and lifespan hooks,
where a module keeps the pools it creates, what it closes, and how big a
pool can grow (``slotguard.analysis.pools``, data in ``slotguard.model.lifecycle``)."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from slotguard.analysis.infer import ModuleInfo
from slotguard.analysis.pools import Lifecycle, PoolSize, lifecycle, ownership, size_of
from slotguard.model import Model
from slotguard.model.lifecycle import Phase
from slotguard.syntax import walk


def read(source: str, name: str = "app.main") -> tuple[ModuleInfo, Lifecycle]:
    module = ModuleInfo(cst.parse_module(textwrap.dedent(source)), Model(), name)
    return module, lifecycle(module)


def hooks(source: str) -> dict[str, list[tuple[Phase, str | None]]]:
    module, found = read(source)
    return {
        function.name: [(hook.phase, hook.application) for hook in found.hooks_of(function)]
        for function in module.functions
        if found.hooks_of(function)
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            """
            app = FastAPI()
            @app.on_event("startup")
            async def up(): ...
            @app.on_event("shutdown")
            async def down(): ...
            """,
            {"up": [(Phase.STARTUP, "app.main.app")], "down": [(Phase.SHUTDOWN, "app.main.app")]},
        ),
        (
            """
            async def up(): ...
            async def down(): ...
            async def life(app): yield
            app = Starlette(on_startup=[up], on_shutdown=[down], lifespan=life)
            """,
            {
                "up": [(Phase.STARTUP, "app.main.app")],
                "down": [(Phase.SHUTDOWN, "app.main.app")],
                "life": [(Phase.LIFESPAN, "app.main.app")],
            },
        ),
        (
            """
            async def up(app): ...
            async def down(app): ...
            async def ctx(app): yield
            def make():
                app = web.Application()
                app.on_startup.append(up)
                app.on_cleanup.append(down)
                app.cleanup_ctx.append(ctx)
                return app
            """,
            {
                "up": [(Phase.STARTUP, None)],
                "down": [(Phase.SHUTDOWN, None)],
                "ctx": [(Phase.LIFESPAN, None)],
            },
        ),
        (
            """
            from sanic import Sanic
            app = Sanic("x")
            @app.before_server_start
            async def up(app, loop): ...
            @app.listener("after_server_stop")
            async def down(app, loop): ...
            async def stop(app, loop): ...
            app.register_listener(stop, "before_server_stop")
            """,
            {
                "up": [(Phase.STARTUP, "app.main.app")],
                "down": [(Phase.SHUTDOWN, "app.main.app")],
                "stop": [(Phase.SHUTDOWN, "app.main.app")],
            },
        ),
        (
            """
            import atexit
            from app.web import app
            @atexit.register
            def bye(): ...
            async def up(): ...
            async def down(): ...
            app.add_event_handler("startup", up)
            app.router.on_shutdown.append(down)
            """,
            {
                "bye": [(Phase.SHUTDOWN, None)],
                "up": [(Phase.STARTUP, "app.web.app")],
                "down": [(Phase.SHUTDOWN, "app.web.app")],
            },
        ),
        (
            """
            async def init(): ...
            def register(app):
                app.on_event("startup")(init)
            """,
            {"init": [(Phase.STARTUP, None)]},
        ),
    ],
    ids=["on_event", "starlette-keywords", "aiohttp", "sanic", "atexit-and-imported-app", "call"],
)
def test_hooks(source: str, expected: dict[str, list[tuple[Phase, str | None]]]) -> None:
    assert hooks(source) == expected


def test_where_pools_are_kept() -> None:
    _, found = read(
        """
        import asyncpg
        from sqlalchemy import create_engine

        engine = create_engine(URL)
        pool_key = web.AppKey("pool", asyncpg.Pool)

        async def startup(app):
            global later
            later = await asyncpg.create_pool(DSN)
            app.state.pool = await asyncpg.create_pool(DSN)
            app.ctx.other = await asyncpg.create_pool(DSN)
            app["pg"] = await asyncpg.create_pool(DSN)
            app[pool_key] = await asyncpg.create_pool(DSN)
            app.db_pool = await asyncpg.create_pool(DSN)
            local = await asyncpg.create_pool(DSN)
            stored = await asyncpg.create_pool(DSN)
            app.state.stored = stored

        class Repository:
            def __init__(self):
                self.engine = create_engine(URL)
        """
    )
    assert [(site.shown, site.storage.key) for site in found.sites] == [
        ("engine", "close:global:app.main.engine"),
        ("later", "close:global:app.main.later"),
        ("app.state.pool", "close:state:pool"),
        ("app.ctx.other", "close:state:other"),
        ('app["pg"]', "close:state:pg"),
        ("app[pool_key]", "close:state:app.main.pool_key"),
        ("app.db_pool", "close:attribute:db_pool"),
        ("local", "close:local:local"),
        ("app.state.stored", "close:state:stored"),
        ("self.engine", "close:instance:app.main.Repository.engine"),
    ]


def test_what_a_module_closes() -> None:
    _, found = read(
        """
        import atexit
        from contextlib import AsyncExitStack
        from typing import cast
        from app import db
        from app.db import engine, other_engine, close_pool

        atexit.register(engine.dispose)

        async def lifespan(app):
            async with AsyncExitStack() as stack:
                stack.push_async_callback(other_engine.dispose)
                yield
            await db.replica.dispose()
            await cast(AsyncEngine, app.state.engine).dispose()
            pool = app["pg"]
            await pool.close()
            async with app.ctx.entered:
                pass

        def sync_twin():
            db.async_engine.sync_engine.dispose()
        """
    )
    assert sorted(found.closes) == [
        "close:attribute:async_engine",
        "close:attribute:entered",
        "close:attribute:replica",
        "close:global:app.db.async_engine",
        "close:global:app.db.engine",
        "close:global:app.db.other_engine",
        "close:global:app.db.replica",
        "close:state:engine",
        "close:state:entered",
        "close:state:pg",
    ]


def test_local_pools_closed_handed_off_or_kept() -> None:
    _, found = read(
        """
        import asyncpg

        async def closed():
            pool = await asyncpg.create_pool(DSN)
            try:
                await work(pool)
            finally:
                await pool.close()

        async def returned():
            pool = await asyncpg.create_pool(DSN)
            return pool

        async def owned():
            pool = await asyncpg.create_pool(DSN)
            return Service(pool)

        async def borrowed():
            pool = await asyncpg.create_pool(DSN)
            await work(pool)

        async def registered(app):
            pool = await asyncpg.create_pool(DSN)
            app.on_cleanup.append(lambda app: pool.close())
        """
    )
    assert [
        (s.function.name, s.closed_locally, s.handed_off) for s in found.sites if s.function
    ] == [
        ("closed", True, False),
        ("returned", False, True),
        ("owned", False, True),
        ("borrowed", False, False),
        ("registered", True, False),
    ]


def test_cached_getters_keep_what_they_return() -> None:
    module, found = read(
        """
        import asyncpg
        from functools import lru_cache
        from sqlalchemy import create_engine
        from app.db import make_engine

        _engine = None
        _engines: dict[str, object] = {}

        def get_engine():
            global _engine
            if _engine is None:
                _engine = create_engine(URL)
            return _engine

        def engine_for(name):
            engine = create_engine(URL)
            _engines[name] = engine
            return engine

        def default_engine():
            return engine_for("default")

        @lru_cache
        def reporting_engine():
            return create_engine(URL)

        class Engines:
            @classmethod
            def shared(cls):
                cls._shared = create_engine(URL)
                return cls._shared

        class Settings:
            def engine(self):
                if self._engine is None:
                    self._engine = create_engine(URL)
                return self._engine

        def fresh_engine():
            return create_engine(URL)

        def imported_engine():
            return make_engine()
        """
    )
    caches = {
        function.name: found.caches[id(function)].name
        for function in module.functions
        if id(function) in found.caches
    }
    assert caches == {
        "get_engine": "app.main._engine",
        "engine_for": "app.main._engines",
        "default_engine": "app.main._engines",
        "reporting_engine": "app.main.reporting_engine()",
        "shared": "app.main.Engines._shared",
        "engine": "app.main.Settings._engine",
    }


def test_registrations_name_what_they_register() -> None:
    _, found = read(
        """
        from contextlib import asynccontextmanager

        def make_lifespan(settings):
            @asynccontextmanager
            async def lifespan(app):
                yield
            return lifespan

        app = FastAPI(lifespan=make_lifespan(settings))

        class Service:
            async def close(self): ...
            def register(self, app):
                app.on_cleanup.append(self.close)
        """
    )
    assert [(hook.via, hook.target) for hook in found.registrations] == [
        ("lifespan", "make_lifespan(settings)"),
        ("on_cleanup", "self.close"),
    ]
    assert hooks(
        """
        def make_lifespan(settings):
            async def lifespan(app):
                yield
            return lifespan

        app = FastAPI(lifespan=make_lifespan(settings))
        """
    ) == {"lifespan": [(Phase.LIFESPAN, "app.main.app")]}
    assert found.entry


def test_a_closer_the_module_does_not_register_is_missed() -> None:
    _, found = read(
        """
        import asyncpg

        async def init_db(app):
            app["pg"] = await asyncpg.create_pool(DSN)

        async def close_db(app):
            await app["pg"].close()

        async def close_cache(app):
            await app["cache"].close()

        def make_app():
            app = web.Application()
            app.on_startup.append(init_db)
            app.on_cleanup.append(init_db)
            app.on_cleanup.append(close_cache)
            return app
        """
    )
    assert [(missed.key, missed.closer.name) for missed in found.missed] == [
        ("close:state:pg", "close_db")
    ]
    assert "close:state:cache" in found.closes


def test_an_owner_class_that_disposes_after_a_commit_can_skip_it() -> None:
    module, found = read(
        """
        from sqlalchemy import create_engine

        class Store:
            def __init__(self):
                self.engine = create_engine(URL)
                self.connection = self.engine.connect()

            def close(self):
                self.connection.commit()
                self.engine.dispose()

        class SafeStore:
            def __init__(self):
                self.engine = create_engine(URL)
                self.connection = self.engine.connect()

            def close(self):
                try:
                    self.connection.commit()
                finally:
                    self.engine.dispose()
        """
    )
    store, safe = (ownership(module, found, site) for site in found.sites)
    assert store is not None and safe is not None
    assert store.skipped is not None and not store.released
    assert cst.Module([]).code_for_node(store.skipped.raising) == "self.connection.commit()"
    assert safe.released
    assert store.keys == ("close:self:app.main.Store.engine", "close:attribute:engine")


def sizes(source: str) -> list[PoolSize]:
    module, _ = read(source)
    found = []
    for node in walk(module.tree):
        if isinstance(node, cst.Call):
            size = size_of(node, module)
            if size is not None:
                found.append(size)
    return found


@pytest.mark.parametrize(
    ("source", "connections", "detail"),
    [
        (
            "from sqlalchemy import create_engine as ce\nce(url, max_overflow=0)",
            5,
            "pool_size default 5 + max_overflow 0",
        ),
        (
            "import sqlalchemy\nsqlalchemy.create_engine(url, max_overflow=-1)",
            None,
            "max_overflow=-1 lifts the limit",
        ),
        (
            "from sqlalchemy import create_engine, pool\n"
            "create_engine(url, poolclass=pool.StaticPool)",
            1,
            "StaticPool",
        ),
        (
            "from sqlalchemy import create_engine\ncreate_engine(url, **options)",
            None,
            "pool_size may come from `**` arguments, max_overflow may come from `**` arguments",
        ),
        (
            "import asyncpg\nSIZE = 20\nasyncpg.create_pool(dsn, max_size=SIZE)",
            20,
            "max_size 20",
        ),
        (
            "import psycopg_pool\npsycopg_pool.ConnectionPool(dsn)",
            4,
            "max_size unset, so min_size default 4",
        ),
        (
            "from psycopg_pool import ConnectionPool\nConnectionPool(dsn, min_size=2, max_size=6)",
            6,
            "max_size 6",
        ),
        (
            "from psycopg_pool import NullConnectionPool\nNullConnectionPool(dsn)",
            None,
            "max_size not given",
        ),
        ("from psycopg2 import pool\npool.ThreadedConnectionPool(1, 12, dsn)", 12, "maxconn 12"),
        ("import aiomysql\naiomysql.create_pool(maxsize=0)", None, "maxsize=0 lifts the limit"),
        ("import aiopg.sa\naiopg.sa.create_engine(dsn)", 10, "maxsize default 10"),
        ("from databases import Database\nDatabase(url, max_size=3)", 3, "max_size 3"),
    ],
)
def test_pool_sizes(source: str, connections: int | None, detail: str) -> None:
    (size,) = sizes(source)
    assert (size.connections, size.detail) == (connections, detail)


def test_sizes_that_live_elsewhere_and_calls_that_make_no_pool() -> None:
    assert sizes("from sqlalchemy import engine_from_config\nengine_from_config(cfg)") == [
        PoolSize(None, "the sizes come from the configuration")
    ]
    assert sizes("import asyncpg\nasyncpg.connect(dsn)") == []


def test_a_null_pool_keeps_no_connections() -> None:
    (size,) = sizes(
        "from sqlalchemy import create_engine\nfrom sqlalchemy.pool import NullPool\n"
        "create_engine(url, poolclass=NullPool)"
    )
    assert (size.connections, size.keeps_connections) == (None, False)

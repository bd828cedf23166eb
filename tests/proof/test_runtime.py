"""slotguard.runtime against the real PostgreSQL server with the real drivers:
every way each library takes and gives back a connection, the taking line, and
the production log from an event loop.

Each test takes its own pools and connections and leaves none behind (the
server is shared by the session, and the proof tests count its connections).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import psycopg2
import psycopg2.pool
import psycopg_pool
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import slotguard.runtime as runtime
from proof.postgres import PostgresInfo
from slotguard.runtime import Checkout, Tracker, track

pytestmark = pytest.mark.proof

HERE = Path(__file__).resolve()


def line_of(marker: str) -> int:
    for number, line in enumerate(HERE.read_text().splitlines(), 1):
        if line.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(f"no line marked {marker}")


def taken_at(checkout: Checkout) -> int:
    frame = checkout.taken_at
    assert frame is not None and frame.filename == str(HERE), checkout.stack.format()
    return frame.line


def only(tracker: Tracker) -> Checkout:
    held = tracker.checked_out()
    assert len(held) == 1, held
    return held[0]


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    with track() as tracker:
        yield tracker


# -- asyncpg -------------------------------------------------------------------------


async def asyncpg_ways(dsn: str, tracker: Tracker) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2)
    try:
        conn = await pool.acquire()  # asyncpg acquire
        assert (only(tracker).what, taken_at(only(tracker))) == (
            "asyncpg pool connection",
            line_of("asyncpg acquire"),
        )
        await pool.release(conn)
        assert tracker.checked_out() == []
        async with pool.acquire() as conn:  # asyncpg context manager
            assert taken_at(only(tracker)) == line_of("asyncpg context manager")
            assert await conn.fetchval("select 1") == 1
        assert tracker.checked_out() == []
        assert await pool.fetchval("select 2") == 2
        assert tracker.checked_out() == []
        conn = await pool.acquire()
        await conn.close()
        assert tracker.checked_out() == [] and tracker.abandoned() == []
        direct = await asyncpg.connect(dsn)  # asyncpg connect
        assert (only(tracker).what, only(tracker).pooled) == ("asyncpg connection", False)
        assert taken_at(only(tracker)) == line_of("asyncpg connect")
        await direct.close()
        assert tracker.checked_out() == []
        await pool.acquire()  # never released
    finally:
        pool.terminate()
    assert tracker.checked_out() == []
    (abandoned,) = tracker.abandoned()
    assert abandoned.abandoned and taken_at(abandoned) == line_of("never released")


def test_asyncpg_pools_and_connections(postgres: PostgresInfo, tracker: Tracker) -> None:
    asyncio.run(asyncpg_ways(postgres.dsn, tracker))


# -- psycopg and psycopg_pool ----------------------------------------------------------


def test_psycopg_pools_and_connections(postgres: PostgresInfo, tracker: Tracker) -> None:
    with psycopg_pool.ConnectionPool(postgres.dsn, min_size=0, max_size=2, open=True) as pool:
        conn = pool.getconn()  # psycopg_pool getconn
        assert (only(tracker).what, taken_at(only(tracker))) == (
            "psycopg_pool connection",
            line_of("psycopg_pool getconn"),
        )
        pool.putconn(conn)
        with pool.connection() as conn:  # psycopg_pool connection()
            assert taken_at(only(tracker)) == line_of("psycopg_pool connection()")
        assert tracker.checked_out() == []
        del conn
        pool.getconn()  # dropped without putconn
        gc.collect()
        (lost,) = tracker.checked_out()
        assert lost.lost and taken_at(lost) == line_of("dropped without putconn")
        assert pool.get_stats()["pool_size"] - pool.get_stats()["pool_available"] == 1
    direct = psycopg.connect(postgres.dsn)  # psycopg connect
    assert [c.what for c in tracker.checked_out() if not c.lost] == ["psycopg connection"]
    direct.close()
    assert [c for c in tracker.checked_out() if not c.lost] == []


async def async_psycopg_ways(dsn: str, tracker: Tracker) -> None:
    async with psycopg_pool.AsyncConnectionPool(dsn, min_size=0, max_size=2, open=False) as pool:
        conn = await pool.getconn()  # async getconn
        assert taken_at(only(tracker)) == line_of("async getconn")
        await pool.putconn(conn)
        async with pool.connection():  # async connection()
            assert taken_at(only(tracker)) == line_of("async connection()")
        assert tracker.checked_out() == []
    direct = await psycopg.AsyncConnection.connect(dsn)  # async psycopg connect
    assert taken_at(only(tracker)) == line_of("async psycopg connect")
    await direct.close()
    assert tracker.checked_out() == []


def test_psycopg_async_pools_and_connections(postgres: PostgresInfo, tracker: Tracker) -> None:
    asyncio.run(async_psycopg_ways(postgres.dsn, tracker))


def test_psycopg_transactions_idle_between_statements(postgres: PostgresInfo) -> None:
    with track(idle_threshold=0.05) as tracker, psycopg.connect(postgres.dsn) as conn:
        conn.execute("select 1")
        time.sleep(0.1)
        conn.commit()  # the commit ends the wait
        with conn.transaction():  # the block's end ends the wait
            conn.execute("select 2")
            time.sleep(0.1)
        conn.execute("select 3")
        conn.execute("select 4")
        conn.rollback()
        conn.autocommit = True
        conn.execute("select 5")
        time.sleep(0.1)
        ended = tracker.idle_transactions()
    assert [(i.library, i.ongoing) for i in ended] == [("psycopg", False)] * 2
    assert [i.at.line if i.at else None for i in ended] == [
        line_of("the commit ends the wait"),
        line_of("the block's end ends the wait"),
    ]


def waits_in_its_transaction(dsn: str, waiting: threading.Event, done: threading.Event) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("select 1")
        waiting.set()
        done.wait(10)  # waits holding the transaction


def test_an_ongoing_wait_shows_where_the_holder_waits_now(postgres: PostgresInfo) -> None:
    waiting, done = threading.Event(), threading.Event()
    with track(idle_threshold=0.05) as tracker:
        holder = threading.Thread(
            target=waits_in_its_transaction, args=(postgres.dsn, waiting, done), name="holder"
        )
        holder.start()
        try:
            assert waiting.wait(10)
            time.sleep(0.1)
            (idle,) = tracker.idle_transactions()
        finally:
            done.set()
            holder.join()
    assert idle.ongoing and idle.thread == "holder" and idle.idle_for >= 0.05
    assert idle.at is not None and idle.at.line == line_of("waits holding the transaction")


# -- psycopg2 -------------------------------------------------------------------------------


def test_psycopg2_pools_and_connections(postgres: PostgresInfo, tracker: Tracker) -> None:
    kinds = (psycopg2.pool.SimpleConnectionPool, psycopg2.pool.ThreadedConnectionPool)
    for closed, make in enumerate(kinds, 1):
        pool = make(0, 2, postgres.dsn)
        conn = pool.getconn()  # psycopg2 getconn
        assert (only(tracker).what, taken_at(only(tracker))) == (
            "psycopg2 pool connection",
            line_of("psycopg2 getconn"),
        )
        pool.putconn(conn)
        assert tracker.checked_out() == []
        pool.getconn()
        pool.closeall()
        assert tracker.checked_out() == []
        assert [c.abandoned for c in tracker.abandoned()] == [True] * closed
    direct = psycopg2.connect(postgres.dsn)  # psycopg2 connect
    checkout = next(c for c in tracker.checked_out() if not c.pooled)
    assert taken_at(checkout) == line_of("psycopg2 connect")
    direct.close()
    assert [c for c in tracker.checked_out() if not c.pooled] == []


# -- SQLAlchemy's asyncio engines -------------------------------------------------------------


async def session_statement(engine: AsyncEngine) -> Any:
    async with engine.connect() as conn:
        return await conn.execute(text("select 1"))  # async engine statement


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_async_engines_are_tracked_through_their_greenlets(
    postgres: PostgresInfo, tracker: Tracker, driver: str
) -> None:
    seen: list[list[Checkout]] = []

    async def run() -> None:
        engine = create_async_engine(postgres.sqlalchemy_url(driver))
        try:
            async with engine.connect() as conn:  # async engine connect
                seen.append(tracker.checked_out())
                await conn.execute(text("select 1"))
        finally:
            await engine.dispose()

    asyncio.run(run())
    (held,) = seen
    assert [c.what for c in held] == ["SQLAlchemy pool connection"], "the dialect's connect counted"
    assert taken_at(held[0]) == line_of("async engine connect")
    assert tracker.checked_out() == []


# -- the production log, in an event loop --------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def hold_and_return(dsn: str, records: Records, threshold: float) -> tuple[float, int]:
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2)
    try:
        started = time.monotonic()
        async with pool.acquire() as quick:
            await asyncio.sleep(threshold / 10)
            await quick.fetchval("select 1")
        async with pool.acquire():  # held in the loop
            assert await until(lambda: bool(records.records))
            await asyncio.sleep(threshold / 2)
        ticks = 0
        while time.monotonic() - started < 2 * threshold:
            ticks += 1
            await asyncio.sleep(0.01)
        return time.monotonic() - started, ticks
    finally:
        await pool.close()


def test_the_production_log_names_the_holder_once_from_its_own_thread(
    postgres: PostgresInfo,
) -> None:
    logger = logging.getLogger("slotguard.test.production")
    logger.propagate = False
    records = Records()
    logger.addHandler(records)
    threshold = 0.5
    runtime.install(threshold=threshold, interval=0.01, logger=logger)
    try:
        asyncio.run(hold_and_return(postgres.dsn, records, threshold))
    finally:
        runtime.uninstall()
        logger.removeHandler(records)
    warnings = [r for r in records.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    (warning,) = warnings
    assert warning.threadName == "slotguard-watchdog"
    first = warning.getMessage().splitlines()[0]
    assert first.startswith("slotguard: asyncpg pool connection held for ")
    assert f"{HERE.name}:{line_of('held in the loop')}" in first
    assert "async with pool.acquire():  # held in the loop" in warning.getMessage()

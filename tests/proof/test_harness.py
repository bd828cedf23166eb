"""The harness proves what it claims: with each real driver, a connection checked
out and not returned is seen by both the pool's counters and the server, and
returning it is seen too. Later scenario tests rely on these observations.

Pools start empty (minimum size 0), so the server's count of sessions is
exactly the connections the test made the pool open.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import psycopg
import psycopg2.pool
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from proof.observe import (
    Observer,
    PoolCounts,
    ScenarioError,
    ServerConnections,
    asyncpg_pool_counts,
    psycopg2_pool_counts,
    psycopg_pool_counts,
    run_scenario,
    sqlalchemy_pool_counts,
)
from proof.postgres import PostgresInfo, PostgresServer, PostgresUnavailable

pytestmark = pytest.mark.proof

POOL_SIZE = 3
HELD = PoolCounts(open=1, idle=0, checked_out=1)
RETURNED = PoolCounts(open=1, idle=1, checked_out=0)
EXAMPLE_SCENARIO = Path(__file__).with_name("example_scenario.py")


def server_settles_at(observer: Observer, by_state: dict[str, int]) -> ServerConnections:
    """Wait until the server shows exactly these sessions by state, and assert it does.

    The observer is synchronous; async tests call it from inside their event
    loop, which pauses only the client while the server is looked at.
    """
    seen = observer.settle(until=lambda current: current.by_state == by_state)
    assert seen.by_state == by_state
    return seen


def test_asyncpg_pool(postgres: PostgresInfo, observer: Observer) -> None:
    async def exercise() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=0, max_size=POOL_SIZE)
        try:
            connection = await pool.acquire()
            assert asyncpg_pool_counts(pool) == HELD
            server_settles_at(observer, {"idle": 1})
            await pool.release(connection)
            assert asyncpg_pool_counts(pool) == RETURNED
        finally:
            await pool.close()

    asyncio.run(exercise())
    server_settles_at(observer, {})


def test_psycopg_pool(postgres: PostgresInfo, observer: Observer) -> None:
    with ConnectionPool(postgres.dsn, min_size=0, max_size=POOL_SIZE, open=True) as pool:
        connection = pool.getconn()
        assert psycopg_pool_counts(pool) == HELD
        server_settles_at(observer, {"idle": 1})
        pool.putconn(connection)
        assert psycopg_pool_counts(pool) == RETURNED
    server_settles_at(observer, {})


def test_psycopg_async_pool(postgres: PostgresInfo, observer: Observer) -> None:
    async def exercise() -> None:
        pool = AsyncConnectionPool(postgres.dsn, min_size=0, max_size=POOL_SIZE, open=False)
        async with pool:
            connection = await pool.getconn()
            assert psycopg_pool_counts(pool) == HELD
            server_settles_at(observer, {"idle": 1})
            await pool.putconn(connection)
            assert psycopg_pool_counts(pool) == RETURNED

    asyncio.run(exercise())
    server_settles_at(observer, {})


def test_psycopg2_pool(postgres: PostgresInfo, observer: Observer) -> None:
    """psycopg2 pools close returned connections beyond ``minconn`` instead of keeping them."""
    pool = psycopg2.pool.ThreadedConnectionPool(0, POOL_SIZE, postgres.dsn)
    try:
        connection = pool.getconn()
        assert psycopg2_pool_counts(pool) == HELD
        server_settles_at(observer, {"idle": 1})
        pool.putconn(connection)
        assert psycopg2_pool_counts(pool) == PoolCounts(open=0, idle=0, checked_out=0)
        server_settles_at(observer, {})
    finally:
        pool.closeall()


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_sqlalchemy_engine(postgres: PostgresInfo, observer: Observer, driver: str) -> None:
    engine = create_engine(postgres.sqlalchemy_url(driver), pool_size=POOL_SIZE, max_overflow=0)
    assert isinstance(engine.pool, QueuePool)
    try:
        connection = engine.connect()
        assert sqlalchemy_pool_counts(engine.pool) == HELD
        server_settles_at(observer, {"idle": 1})
        connection.close()
        assert sqlalchemy_pool_counts(engine.pool) == RETURNED
    finally:
        engine.dispose()
    server_settles_at(observer, {})


def test_sqlalchemy_async_engine(postgres: PostgresInfo, observer: Observer) -> None:
    async def exercise() -> None:
        engine = create_async_engine(
            postgres.sqlalchemy_url("asyncpg"), pool_size=POOL_SIZE, max_overflow=0
        )
        assert isinstance(engine.pool, QueuePool)
        try:
            connection = await engine.connect()
            assert sqlalchemy_pool_counts(engine.pool) == HELD
            server_settles_at(observer, {"idle": 1})
            await connection.close()
            assert sqlalchemy_pool_counts(engine.pool) == RETURNED
        finally:
            await engine.dispose()

    asyncio.run(exercise())
    server_settles_at(observer, {})


def test_idle_in_transaction_is_observable(postgres: PostgresInfo, observer: Observer) -> None:
    """A session's first query autobegins a transaction that stays open until close:
    the server shows it idle in transaction, the slow leak SG403 is about."""
    engine = create_engine(postgres.sqlalchemy_url("psycopg"), pool_size=POOL_SIZE, max_overflow=0)
    assert isinstance(engine.pool, QueuePool)
    try:
        session = Session(engine)
        session.execute(text("SELECT 1"))
        assert sqlalchemy_pool_counts(engine.pool) == HELD
        assert server_settles_at(observer, {"idle in transaction": 1}).idle_in_transaction == 1
        session.close()
        assert sqlalchemy_pool_counts(engine.pool) == RETURNED
        server_settles_at(observer, {"idle": 1})
    finally:
        engine.dispose()
    server_settles_at(observer, {})


def test_settle_without_target_waits_for_counts_to_stop_changing(
    postgres: PostgresInfo, observer: Observer
) -> None:
    connection = psycopg.connect(postgres.dsn)
    assert observer.settle().total == 1
    connection.close()
    assert observer.settle().total == 0


def test_example_scenario_leaks_only_for_the_life_of_its_process(
    postgres: PostgresInfo, observer: Observer
) -> None:
    report = run_scenario(EXAMPLE_SCENARIO, postgres.dsn, iterations=5, pool_size=POOL_SIZE)
    assert report == {
        "checked_out": POOL_SIZE,
        "results": ["acquired"] * POOL_SIZE + ["timed out"] * 2,
        "timed_out": True,
    }
    server_settles_at(observer, {})


@pytest.mark.parametrize(
    ("program", "complaint"),
    [
        ("raise SystemExit(3)", "exited with code 3"),
        ("print('not json')", "did not print one JSON object"),
        ("import time; time.sleep(30)", "did not exit within"),
    ],
)
def test_broken_scenarios_are_reported(tmp_path: Path, program: str, complaint: str) -> None:
    script = tmp_path / "broken_scenario.py"
    script.write_text(program)
    with pytest.raises(ScenarioError, match=complaint):
        run_scenario(script, "postgresql://unused", iterations=1, pool_size=1, timeout=1)


def test_full_server_refuses_the_application_role_and_teardown_leaves_nothing() -> None:
    """With max_connections=5 and 3 slots reserved for superusers, the application
    gets 2: the third fails with the error slotguard exists to prevent."""
    server = PostgresServer(max_connections=5)
    with server as info:
        postmaster_pid = int(Path(info.host, "data", "postmaster.pid").read_text().split()[0])
        held = [psycopg.connect(info.dsn) for _ in range(2)]
        with pytest.raises(
            psycopg.OperationalError, match="remaining connection slots are reserved"
        ):
            psycopg.connect(info.dsn)
        assert all(not connection.closed for connection in held)
    with pytest.raises(ProcessLookupError):
        os.kill(postmaster_pid, 0)
    assert not Path(info.host).exists()


def test_missing_binaries_are_reported_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailable, match=re.escape(str(tmp_path))):
        PostgresServer(bindir=tmp_path).start()


@pytest.mark.parametrize(("require", "outcome"), [("0", r"1 skipped"), ("1", r"1 error")])
def test_missing_postgres_skips_unless_required(require: str, outcome: str) -> None:
    """The skip-or-fail policy of the ``postgres`` fixture, run in a pytest of its own
    (without the hypothesis plugin, which would double its start-up time)."""
    node = f"{Path(__file__).name}::test_settle_without_target_waits_for_counts_to_stop_changing"
    plugins_off = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *plugins_off, "-q", node],
        cwd=Path(__file__).parent,
        env={
            **os.environ,
            "SLOTGUARD_PG_BINDIR": "/nonexistent",
            "SLOTGUARD_REQUIRE_POSTGRES": require,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert re.search(outcome, result.stdout), result.stdout + result.stderr

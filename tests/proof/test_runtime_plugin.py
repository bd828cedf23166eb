"""The pytest plugin in a real pytest run of a small project against the real server.

One project, three runs (each a fresh pytest process, as users run it):

- configured by ``[tool.slotguard.runtime] leaks = "fail"``: each test that
  leaks (a SQLAlchemy session on PostgreSQL and on SQLite, a psycopg_pool
  connection, an asyncpg connection under pytest-asyncio and under anyio)
  errors at teardown naming the line of ``app.py`` that took the connection
  and the rule ``slotguard check`` reports there; each correct twin passes; a
  test using a session-scoped fixture's connection passes; a leak in a test
  marked ``slotguard_leaks("warn")`` is a warning;
- the same under pytest-xdist with ``--slotguard-leaks=fail``;
- ``--slotguard-leaks=off``: the plugin imports no database library.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from proof.postgres import PostgresInfo

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.proof

APP = '''
"""The application under test: each leak next to its correct twin."""

from __future__ import annotations

import asyncpg
from psycopg_pool import ConnectionPool
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session


def order_count(engine: Engine) -> int:
    db = Session(engine)  # session created
    return db.execute(text("select 1")).scalar_one()  # session takes


def order_count_correct(engine: Engine) -> int:
    with Session(engine) as db:
        return db.execute(text("select 1")).scalar_one()


def price(pool: ConnectionPool) -> int:
    conn = pool.getconn()  # getconn takes
    return conn.execute("select 2").fetchone()[0]


def price_correct(pool: ConnectionPool) -> int:
    with pool.connection() as conn:
        return conn.execute("select 2").fetchone()[0]


async def total(pool: asyncpg.Pool, ids: list[int]) -> int | None:
    conn = await pool.acquire()  # acquire takes
    if not ids:
        return None
    value = await conn.fetchval("select 3")
    await pool.release(conn)
    return value


async def total_correct(pool: asyncpg.Pool, ids: list[int]) -> int | None:
    async with pool.acquire() as conn:
        if not ids:
            return None
        return await conn.fetchval("select 3")
'''

CONFTEST = """
import os

import pytest
import pytest_asyncio

DSN = os.environ["SLOTGUARD_TEST_DSN"]


@pytest.fixture(scope="session")
def pg_engine():
    from sqlalchemy import create_engine, make_url

    url = make_url(DSN).set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_engine():
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def held_for_the_session(pg_engine):
    connection = pg_engine.connect()
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def psycopg_pool():
    from psycopg_pool import ConnectionPool

    with ConnectionPool(DSN, min_size=0, max_size=4, open=True) as pool:
        yield pool


@pytest_asyncio.fixture
async def asyncpg_pool():
    import asyncpg

    pool = await asyncpg.create_pool(DSN, min_size=0, max_size=2)
    yield pool
    pool.terminate()


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

TEST_SYNC = """
import pytest

import app


def test_session_leaks_on_postgres(pg_engine):
    assert app.order_count(pg_engine) == 1


def test_session_correct_on_postgres(pg_engine):
    assert app.order_count_correct(pg_engine) == 1


def test_session_leaks_on_sqlite(sqlite_engine):
    assert app.order_count(sqlite_engine) == 1


def test_session_correct_on_sqlite(sqlite_engine):
    assert app.order_count_correct(sqlite_engine) == 1


def test_psycopg_pool_leaks(psycopg_pool):
    assert app.price(psycopg_pool) == 2


def test_psycopg_pool_correct(psycopg_pool):
    assert app.price_correct(psycopg_pool) == 2


def test_the_session_fixtures_connection_is_not_the_tests(held_for_the_session):
    assert held_for_the_session.exec_driver_sql("select 4").scalar_one() == 4


@pytest.mark.slotguard_leaks("warn")
def test_marked_to_warn(pg_engine):
    assert app.order_count(pg_engine) == 1
"""

TEST_ASYNC = """
import os

import asyncpg
import pytest

import app


@pytest.mark.asyncio
async def test_asyncpg_leaks_under_pytest_asyncio(asyncpg_pool):
    assert await app.total(asyncpg_pool, []) is None


@pytest.mark.asyncio
async def test_asyncpg_correct_under_pytest_asyncio(asyncpg_pool):
    assert await app.total_correct(asyncpg_pool, []) is None
    assert await app.total_correct(asyncpg_pool, [1]) == 3


DSN = os.environ["SLOTGUARD_TEST_DSN"]


@pytest.mark.anyio
async def test_asyncpg_leaks_under_anyio():
    pool = await asyncpg.create_pool(DSN, min_size=0, max_size=2)
    try:
        assert await app.total(pool, []) is None
    finally:
        pool.terminate()


@pytest.mark.anyio
async def test_asyncpg_correct_under_anyio():
    async with asyncpg.create_pool(DSN, min_size=0, max_size=2) as pool:
        assert await app.total_correct(pool, [1]) == 3
"""

TEST_OFF = """
import sys

def test_no_database_library_is_imported():
    loaded = {"sqlalchemy", "asyncpg", "psycopg", "psycopg2", "psycopg_pool"} & set(sys.modules)
    assert not loaded
    assert "slotguard-leak-check" not in str(sys.modules.get("slotguard.runtime.tracker"))
"""

PYPROJECT = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"

[tool.slotguard.runtime]
leaks = "fail"
"""

LEAKS = {
    "test_session_leaks_on_postgres": ("session takes", "SG102 on this line"),
    "test_session_leaks_on_sqlite": ("session takes", "SG102 on this line"),
    "test_psycopg_pool_leaks": ("getconn takes", "SG101 on this line"),
    "test_asyncpg_leaks_under_pytest_asyncio": ("acquire takes", "SG201 on this line"),
    "test_asyncpg_leaks_under_anyio": ("acquire takes", "SG201 on this line"),
}
TESTS = 12
"""Tests in the project, each passing its call (the leaks fail their teardown)."""


def line_of(marker: str) -> int:
    for number, line in enumerate(APP.lstrip("\n").splitlines(), 1):
        if line.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(f"no line marked {marker}")


@pytest.fixture
def project(pytester: pytest.Pytester, postgres: PostgresInfo, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SLOTGUARD_TEST_DSN", postgres.dsn)
    pytester.makepyfile(
        app=textwrap.dedent(APP).lstrip("\n"),
        conftest=CONFTEST,
        test_sync=TEST_SYNC,
        test_async=TEST_ASYNC,
        test_off=TEST_OFF,
    )
    pytester.makefile(".toml", pyproject=PYPROJECT)
    return pytester


def teardown_errors(output: str) -> dict[str, str]:
    """Each ``ERROR at teardown of <test>`` section of pytest's output, by test name."""
    sections = re.split(r"_+ ERROR at teardown of (\w+) _+\n", output)
    errors = {}
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        errors[name] = re.split(r"\n(?:=+|_+) ", body, maxsplit=1)[0]
    return errors


def test_each_leaking_test_fails_naming_the_line_that_took_it(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "test_sync.py", "test_async.py")
    output = result.stdout.str()
    errors = teardown_errors(output)
    assert sorted(errors) == sorted(LEAKS), output
    for test, (marker, finding) in LEAKS.items():
        message = errors[test]
        assert message.startswith(
            "slotguard: this test took 1 connection and did not give it back"
        ), message
        assert f"taken at app.py:{line_of(marker)} " in message, message
        assert f"slotguard check reports {finding} (app.py:" in message, message
        assert f'File "app.py", line {line_of(marker)}, in ' in message, message
        assert f'File "test_{"async" if "asyncpg" in test else "sync"}.py", line ' in message
    for test in ("test_session_leaks_on_postgres", "test_session_leaks_on_sqlite"):
        created = f"by a session created at app.py:{line_of('session created')} "
        assert created in errors[test], errors[test]
        assert f"reports SG102 on this line (app.py:{line_of('session created')})" in errors[test]
    assert (
        "never given back: closed only when its pool was terminated"
        in errors["test_asyncpg_leaks_under_anyio"]
    )
    assert "garbage-collected without being returned" in errors["test_psycopg_pool_leaks"]
    warned = output.split("test_sync.py::test_marked_to_warn\n", 1)[-1].splitlines()[0]
    assert re.fullmatch(
        r" +test_sync.py:\d+: SlotguardLeakWarning: slotguard: this test took 1 connection .*",
        warned,
    ), output
    result.assert_outcomes(passed=TESTS, errors=len(LEAKS), warnings=1)


def test_under_xdist_each_worker_checks_its_own_tests(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--slotguard-leaks=fail", "test_async.py"
    )
    output = result.stdout.str()
    errors = teardown_errors(output)
    leaks = {test: marker for test, (marker, _) in LEAKS.items() if "asyncpg" in test}
    assert sorted(errors) == sorted(leaks), output
    for test, marker in leaks.items():
        assert f"taken at app.py:{line_of(marker)} " in errors[test], errors[test]
    result.assert_outcomes(passed=4, errors=len(leaks))


def test_off_the_plugin_imports_no_database_library(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(
        "-p", "no:cacheprovider", "--slotguard-leaks=off", "test_off.py"
    )
    result.assert_outcomes(passed=1)

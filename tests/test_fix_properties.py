"""Properties of ``fix`` on arbitrary code: modules generated from Python's
grammar by hypothesmith, spliced into the acquisition patterns of the fix
fixtures (before the acquisition, between it and the release, inside the
``try``, after it). Whatever the code around the pattern:

- ``fix_source`` raises nothing, and refuses only input that does not parse;
- its output parses (and compiles, if the input did);
- fixing the output again changes nothing.

Bounds: 90 examples of about ten statements each, which run in about 30
seconds here (two or three checks of a small module per example);
``SLOTGUARD_FIX_EXAMPLES=600`` runs more, locally.
"""

from __future__ import annotations

import os
from pathlib import Path

import hypothesmith
import libcst as cst
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from slotguard.config import Config
from slotguard.facts import Fact
from slotguard.fixer import fix_source
from slotguard.parse import parse
from slotguard.settings import Settings
from slotguard.source import SourceError

HEADER = """\
import asyncpg
import psycopg2
from psycopg2 import pool as pg2pool
from psycopg_pool import ConnectionPool
from celery import Celery
from sqlalchemy import create_engine
from starlette.applications import Starlette
from sqlalchemy.orm import Session, scoped_session, sessionmaker

SessionLocal = sessionmaker()
Registry = scoped_session(SessionLocal)
celery = Celery("jobs")
legacy_pool = pg2pool.ThreadedConnectionPool(1, 10, "dbname=app")
modern_pool = ConnectionPool("dbname=app")


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


def open_session(ready):
    if not ready:
        return None
    return SessionLocal()


def open_pair(use_file):
    if use_file:
        connection = open_file_database()
        return connection, connection.cursor()
    return SessionLocal()

"""
HERE = "# here"
"""Marks a ``pass`` that generated statements replace."""

PATTERNS = {
    "asyncpg try/finally": """\
async def spliced(pool: asyncpg.Pool):
    pass  # here
    conn = await pool.acquire()  # one connection
    pass  # here
    try:
        pass  # here
    finally:
        await pool.release(conn)
    pass  # here
""",
    "handlers and more cleanup": """\
async def spliced(pool: asyncpg.Pool, log):
    conn = await pool.acquire()
    try:
        pass  # here
    except asyncpg.PostgresError:
        pass  # here
    else:
        pass  # here
    finally:
        log.info("done")
        await pool.release(conn)
""",
    "acquired inside the try": """\
async def spliced(pool: asyncpg.Pool):
    pass  # here
    try:
        conn = await pool.acquire()
        pass  # here
    finally:
        await pool.release(conn)
""",
    "released in each handler": """\
async def spliced(pool: asyncpg.Pool):
    conn = await pool.acquire()
    try:
        pass  # here
        yield conn
    except Exception:
        pass  # here
        await pool.release(conn)
        raise
    else:
        pass  # here
        await pool.release(conn)
""",
    "nested acquisitions": """\
async def spliced(pool: asyncpg.Pool, other: asyncpg.Pool):
    first = await pool.acquire()
    try:
        second = await other.acquire()
        pass  # here
        try:
            pass  # here
        finally:
            await other.release(second)
    finally:
        await pool.release(first)
""",
    "session closed at the end": """\
def spliced(engine):
    pass  # here
    db = SessionLocal()
    pass  # here
    db.close()
    pass  # here
""",
    "generator": """\
def spliced():
    db = SessionLocal()
    pass  # here
    yield db
    pass  # here
    db.close()
""",
    "psycopg2 with": """\
def spliced(dsn):
    with psycopg2.connect(dsn) as conn:
        pass  # here
    pass  # here
""",
    "psycopg2 pool in a loop": """\
def spliced(queue):
    while True:
        conn = legacy_pool.getconn()
        conn.cursor().execute(queue.get())
        pass  # here
        legacy_pool.putconn(conn)
""",
    "psycopg2 pool with": """\
def spliced():
    with legacy_pool.getconn() as conn:
        pass  # here
""",
    "getconn/putconn": """\
def spliced():
    conn = modern_pool.getconn()
    try:
        pass  # here
    finally:
        modern_pool.putconn(conn)
""",
    "inline session": """\
def spliced(engine):
    with Session(engine).no_autoflush as session:
        pass  # here
""",
    "session never closed": """\
def spliced(engine):
    pass  # here
    db = SessionLocal()
    pass  # here
    db.add(engine)
    pass  # here
""",
    "pooled connection never released": """\
async def spliced(pool: asyncpg.Pool):
    conn = await pool.acquire()
    pass  # here
    await conn.fetch("select 1")
    pass  # here
""",
    "psycopg2 pool never given back": """\
def spliced():
    conn = legacy_pool.getconn()
    pass  # here
    conn.cursor().execute("select 1")
    pass  # here
""",
    "session created inline": """\
def spliced(engine):
    pass  # here
    rows = load(engine, SessionLocal())
    pass  # here
""",
    "lent to a helper object": """\
def spliced():
    db = SessionLocal()
    pass  # here
    handler = Handler(db)
    handler.run()
    pass  # here
    db.close()
""",
    "next on a dependency": """\
def spliced():
    db = next(get_db())
    pass  # here
    db.commit()
    pass  # here
""",
    "loop over a dependency": """\
def spliced():
    for db in get_db():
        pass  # here
        db.commit()
        break
    pass  # here
""",
    "released each way": """\
def spliced():
    conn = legacy_pool.getconn()
    pass  # here
    try:
        pass  # here
        yield conn
    except Exception:
        pass  # here
        legacy_pool.putconn(conn)
        raise
    else:
        legacy_pool.putconn(conn)
""",
    "released before each exit": """\
async def spliced(pool: asyncpg.Pool, key):
    conn = await pool.acquire()
    pass  # here
    if key is None:
        pass  # here
        await pool.release(conn)
        return None
    pass  # here
    await pool.release(conn)
    pass  # here
""",
    "narrowed by a guard": """\
def spliced(ready):
    db = open_session(ready)
    if db is None:
        pass  # here
        return None
    pass  # here
    db.commit()
    pass  # here
""",
    "narrowed by isinstance": """\
def spliced(use_file):
    handle = open_pair(use_file)
    if isinstance(handle, tuple):
        pass  # here
        connection, cursor = handle
    else:
        pass  # here
        handle.commit()
        pass  # here
""",
    "engine made per call": """\
def spliced(url):
    engine = create_engine(url)
    pass  # here
    with engine.connect() as conn:
        pass  # here
        conn.exec_driver_sql("select 1")
    pass  # here
""",
    "pool made per call": """\
async def spliced(dsn):
    pool = await asyncpg.create_pool(dsn)
    pass  # here
    await pool.fetchval("select 1")
    pass  # here
""",
    "registry in a task": """\
@celery.task
def spliced():
    pass  # here
    Registry.execute("select 1")
    pass  # here
    Registry.commit()
""",
    "session entered for no_autoflush": """\
def spliced(engine):
    with Session(engine).no_autoflush as session:
        pass  # here
        session.execute("select 1")
    pass  # here
""",
    "engine kept by the module": """\
shared_engine = create_engine("postgresql://localhost/app")
app = Starlette()


@app.on_event("startup")
async def spliced():
    pass  # here
    with shared_engine.connect() as conn:
        pass  # here
        conn.exec_driver_sql("select 1")
    pass  # here
""",
    "release behind a test": """\
def spliced():
    db = SessionLocal()
    pass  # here
    yield db
    if db is not None:
        db.close()
""",
}
GENERATED = hypothesmith.from_grammar()
"""Built once: building it compiles a grammar (seconds)."""
SETTINGS = Settings.from_config(Config(), extend_select=["SG108"], use_cache=False)
"""The default rules and SG108: most patterns are correct code written by
hand, which only the opt-in SG108 rewrites."""
PATH = Path("spliced.py")
ALONE: tuple[Fact, ...] = ()
"""The module is the whole run: the findings the run settles (SG106, SG501)
are made and fixed too."""


def is_marker(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and isinstance(statement.body[0], cst.Pass)
        and statement.trailing_whitespace.comment is not None
        and statement.trailing_whitespace.comment.value == HERE
    )


def splice(pattern: str, filler: list[cst.BaseStatement], cuts: list[int]) -> str:
    """The pattern with each marker replaced by the next run of ``filler``
    (``cuts`` says where the runs end); an empty run leaves a ``pass``."""
    module = cst.parse_module(HEADER + pattern)
    runs: list[list[cst.BaseStatement]] = []
    start = 0
    for cut in [*cuts, len(filler)]:
        runs.append(filler[start:cut])
        start = max(start, cut)
    blocks = [
        node
        for node in _every_block(module)
        if any(is_marker(statement) for statement in node.body)
    ]
    replacements: dict[int, cst.IndentedBlock] = {}
    for block in blocks:
        body: list[cst.BaseStatement] = []
        for statement in block.body:
            if is_marker(statement):
                run = runs.pop(0) if runs else []
                body += run or [cst.SimpleStatementLine([cst.Pass()])]
            else:
                body.append(statement)
        replacements[id(block)] = block.with_changes(body=body)
    for block in reversed(blocks):
        replaced = module.deep_replace(block, replacements[id(block)])
        assert isinstance(replaced, cst.Module)
        module = replaced
    return module.code


def _every_block(module: cst.Module) -> list[cst.IndentedBlock]:
    found: list[cst.IndentedBlock] = []
    stack: list[cst.CSTNode] = [module]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.IndentedBlock):
            found.append(node)
        stack.extend(node.children)
    return found


def usable(statement: cst.BaseStatement) -> bool:
    """Statements that can stand in a function body: not ``from __future__``."""
    if isinstance(statement, cst.SimpleStatementLine):
        return not any(
            isinstance(small, cst.ImportFrom)
            and isinstance(small.module, cst.Name)
            and small.module.value == "__future__"
            for small in statement.body
        )
    return True


def compiles(source: str) -> bool:
    try:
        compile(source, PATH.name, "exec")
    except (SyntaxError, ValueError):
        return False
    return True


@st.composite
def spliced_modules(draw: st.DrawFn) -> tuple[str, bool]:
    source = draw(GENERATED)
    try:
        generated = cst.parse_module(source)
    except (cst.ParserSyntaxError, cst.CSTValidationError):
        generated = cst.parse_module("")
    filler = [statement for statement in generated.body if usable(statement)][:12]
    name = draw(st.sampled_from(sorted(PATTERNS)))
    markers = PATTERNS[name].count(HERE)
    cuts = sorted(
        draw(st.lists(st.integers(0, len(filler)), min_size=markers - 1, max_size=markers - 1))
    )
    event(f"pattern: {name}")
    return splice(PATTERNS[name], filler, cuts), draw(st.booleans())


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@settings(
    max_examples=int(os.environ.get("SLOTGUARD_FIX_EXAMPLES", "90")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # hypothesmith's target() hill-climbing costs most of the time, for
    # bigger programs that add nothing here.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
@given(spliced_modules())
def test_fix_output_parses_and_a_second_fix_changes_nothing(case: tuple[str, bool]) -> None:
    source, unsafe = case
    data = source.encode()
    result = fix_source(data, PATH, SETTINGS, PATH.name, unsafe=unsafe, run_facts=ALONE)
    if result.error is not None:
        with pytest.raises(SourceError):
            parse(source)
        event("input does not parse")
        return
    if not result.changed:
        event("unchanged")
        return
    event("fixed")
    assert result.text is not None
    parse(result.text)
    if compiles(source):
        compile(result.text, PATH.name, "exec")
    again = fix_source(
        result.text.encode(), PATH, SETTINGS, PATH.name, unsafe=unsafe, run_facts=ALONE
    )
    assert again.error is None and not again.changed, again.text


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_pattern_is_fixed_on_its_own(name: str) -> None:
    """Without filler each pattern is a fixture case: the property test
    above is not vacuous."""
    source = splice(PATTERNS[name], [], [0] * (PATTERNS[name].count(HERE) - 1))
    result = fix_source(source.encode(), PATH, SETTINGS, PATH.name, unsafe=True, run_facts=ALONE)
    assert result.changed, f"{name} was not fixed"

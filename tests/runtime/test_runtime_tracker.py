"""slotguard.runtime without a server: taking stacks, SQLAlchemy on SQLite, idle
transactions, installing and uninstalling, and the ``[tool.slotguard.runtime]`` table.

What needs PostgreSQL (asyncpg, psycopg, the plugin in a real pytest run, the
proof scenarios) is under ``tests/proof``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

import slotguard.runtime as runtime
from slotguard.config import ConfigError, load
from slotguard.runtime import Tracker, track
from slotguard.runtime.stack import BOUNDARY, HIDDEN, LIBRARY, PROJECT, capture, classify
from slotguard.runtime.tracker import HUB

HERE = Path(__file__).resolve()


def line_of(marker: str, path: Path = HERE) -> int:
    """The number of the line of ``path`` that carries ``# <marker>``."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(f"no line marked {marker}")


@pytest.fixture
def engine() -> Iterator[Engine]:
    """One SQLite connection shared by the pool: a session's transaction is real."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    yield engine
    engine.dispose()


# -- stacks -----------------------------------------------------------------------


def outer(depth: int) -> Any:
    return middle(depth)  # outer calls


def middle(depth: int) -> Any:
    return capture(depth)  # middle captures


def test_a_stack_keeps_the_project_frames_innermost_first_up_to_depth() -> None:
    stack = outer(depth=2)
    frames = stack.frames()
    assert [(f.function, f.line) for f in frames] == [
        ("middle", line_of("middle captures")),
        ("outer", line_of("outer calls")),
    ]
    assert stack.taken_at == frames[0]
    assert all(f.filename == str(HERE) for f in frames)
    shown = stack.format(root=str(HERE.parent))
    assert shown.splitlines() == [
        f'  File "{HERE.name}", line {line_of("outer calls")}, in outer',
        "    return middle(depth)  # outer calls",
        f'  File "{HERE.name}", line {line_of("middle captures")}, in middle',
        "    return capture(depth)  # middle captures",
    ]


def test_deep_stacks_stop_at_depth_and_skip_pytest() -> None:
    frames = outer(depth=50).frames()
    assert [f.function for f in frames][:3] == ["middle", "outer", frames[2].function]
    assert all(classify(f.filename) == PROJECT for f in frames)
    assert not any("_pytest" in f.filename or "pluggy" in f.filename for f in frames)


def test_files_are_classified_project_library_or_hidden() -> None:
    assert classify(__file__) == PROJECT
    assert classify(json.__file__) == HIDDEN  # the standard library
    assert classify(sqlalchemy.__file__) == HIDDEN  # a database library
    assert classify(runtime.__file__) == HIDDEN  # slotguard itself
    assert classify(pytest.__file__) == LIBRARY  # any other installed package
    assert classify("<frozen importlib._bootstrap>") == HIDDEN
    assert classify(asyncio.events.__file__) == BOUNDARY  # where every task step starts
    assert classify(threading.__file__) == BOUNDARY


async def taken_in_a_task() -> Any:
    return capture(8)  # in the task


def test_a_task_s_stack_ends_where_the_task_starts() -> None:
    frames = asyncio.run(taken_in_a_task()).frames()
    assert [f.line for f in frames] == [line_of("in the task")]


# -- SQLAlchemy on SQLite -----------------------------------------------------------


def open_session(engine: Engine) -> Session:
    session = Session(engine)  # session created
    session.execute(text("select 1"))  # session takes
    return session


def test_a_session_holds_its_connection_from_its_first_statement_until_closed(
    engine: Engine,
) -> None:
    with track() as tracker:
        session = open_session(engine)
        (checkout,) = tracker.checked_out()
        assert (checkout.library, checkout.what) == ("sqlalchemy", "SQLAlchemy pool connection")
        assert checkout.taken_at is not None
        assert checkout.taken_at.line == line_of("session takes")
        assert checkout.pooled and not checkout.lost and checkout.held_for >= 0
        assert checkout.created is not None and checkout.created.taken_at is not None
        assert checkout.created.taken_at.line == line_of("session created")
        session.close()
        assert tracker.checked_out() == []


def test_a_connection_without_a_session_has_no_creation_stack(engine: Engine) -> None:
    with track() as tracker, engine.connect():
        assert [c.created for c in tracker.checked_out()] == [None]


def test_a_detached_connection_leaves_the_pool_and_is_tracked_until_closed() -> None:
    engine = create_engine("sqlite://")
    with track() as tracker:
        connection = engine.connect()
        connection.detach()  # detaches
        (checkout,) = tracker.checked_out()
        assert checkout.what == "SQLAlchemy detached connection" and not checkout.pooled
        assert checkout.taken_at is not None and checkout.taken_at.line == line_of("detaches")
        connection.close()
        assert tracker.checked_out() == []
    engine.dispose()


def test_an_engine_made_before_the_tracker_started_is_tracked_too(engine: Engine) -> None:
    with engine.connect():
        pass
    with track() as tracker, engine.connect():
        assert len(tracker.checked_out()) == 1


def test_owners_and_nested_trackers_see_the_same_checkout(engine: Engine) -> None:
    with track() as outer_tracker, track(depth=1) as inner_tracker:
        inner_tracker.owner = "test_a"
        with engine.connect():
            assert [c.owner for c in inner_tracker.checked_out()] == ["test_a"]
            assert [c.owner for c in outer_tracker.checked_out()] == [None]
            assert inner_tracker.checked_out(owner="test_b") == []
        inner_tracker.owner = None
        connection = engine.connect()
        inner_tracker.forget("test_a")
        assert [c.owner for c in inner_tracker.checked_out()] == [None]
        connection.close()


def run_idle_transaction(engine: Engine, wait: float) -> None:
    with Session(engine) as session:
        session.execute(text("select 1"))
        time.sleep(wait)
        session.commit()  # the wait ends


def test_a_transaction_idle_past_the_threshold_is_reported_where_its_wait_ended(
    engine: Engine,
) -> None:
    with track(idle_threshold=0.05) as tracker:
        run_idle_transaction(engine, wait=0)
        assert tracker.idle_transactions() == []
        run_idle_transaction(engine, wait=0.1)
        (idle,) = tracker.idle_transactions()
    assert idle.library == "sqlalchemy" and not idle.ongoing and idle.idle_for >= 0.05
    assert idle.at is not None and idle.at.line == line_of("the wait ends")


def test_a_transaction_still_idle_is_reported_as_ongoing(engine: Engine) -> None:
    with track(idle_threshold=0.01) as tracker:
        session = open_session(engine)
        time.sleep(0.02)
        (idle,) = tracker.idle_transactions()
        assert idle.ongoing and idle.stack.raw == ()  # its holder is the caller itself
        session.close()
        assert [i.ongoing for i in tracker.idle_transactions()] == [False]


def test_the_summary_is_ready_for_a_health_endpoint(engine: Engine) -> None:
    with track() as tracker, engine.connect():
        summary = tracker.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["checked_out"] == 1 and summary["by_library"] == {"sqlalchemy": 1}
    (longest,) = summary["longest"]
    assert longest["taken_at"].startswith(f"{HERE}:")
    assert (
        longest["stack"][0]["function"] == test_the_summary_is_ready_for_a_health_endpoint.__name__
    )


# -- installing and uninstalling ---------------------------------------------------


def patched_attributes() -> dict[tuple[str, str], Any]:
    """Every attribute the hooks replace, as the libraries define them."""
    import asyncpg.pool
    import psycopg
    import psycopg2.pool
    import psycopg_pool

    owners = {
        asyncpg: ["connect"],
        asyncpg.pool.Pool: ["_acquire"],
        asyncpg.pool.PoolConnectionHolder: ["_release", "_release_on_close"],
        psycopg: ["connect"],
        psycopg.Connection: ["connect", "commit", "rollback", "close"],
        psycopg.AsyncConnection: ["connect", "commit", "rollback", "close"],
        psycopg.Cursor: ["execute", "executemany"],
        psycopg.AsyncCursor: ["execute", "executemany"],
        psycopg.Transaction: ["__exit__"],
        psycopg.AsyncTransaction: ["__aexit__"],
        psycopg_pool.ConnectionPool: ["getconn", "putconn"],
        psycopg_pool.AsyncConnectionPool: ["getconn", "putconn"],
        psycopg2: ["connect"],
        psycopg2.pool.AbstractConnectionPool: ["_getconn", "_putconn", "_closeall"],
        psycopg2.pool.SimpleConnectionPool: ["getconn", "putconn", "closeall"],
    }
    return {
        (repr(owner), name): vars(owner)[name] for owner, names in owners.items() for name in names
    }


def test_tracking_replaces_the_libraries_methods_and_puts_back_the_very_same_objects(
    engine: Engine,
) -> None:
    before = patched_attributes()
    with track(idle_threshold=1.0):
        during = patched_attributes()
        assert len(engine.pool.dispatch.checkout) == len(engine.dispatch.after_cursor_execute) == 1
    assert all(during[key] is not before[key] for key in before)
    after = patched_attributes()
    assert all(after[key] is before[key] for key in before)
    assert len(engine.pool.dispatch.checkout) == len(engine.dispatch.after_cursor_execute) == 0
    assert HUB.trackers == ()


def test_the_statement_hooks_are_installed_only_for_idle_detection(engine: Engine) -> None:
    with track():
        assert len(engine.dispatch.after_cursor_execute) == 0
        with track(idle_threshold=1.0):
            assert len(engine.dispatch.after_cursor_execute) == 1
        assert len(engine.dispatch.after_cursor_execute) == 0
        assert len(engine.pool.dispatch.checkout) == 1


def test_install_runs_until_uninstall_and_only_once() -> None:
    tracker = runtime.install(threshold=None)
    try:
        assert runtime.installed() is tracker and tracker.started
        with pytest.raises(RuntimeError, match="already installed"):
            runtime.install()
    finally:
        runtime.uninstall()
    assert runtime.installed() is None and not tracker.started
    runtime.uninstall()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        Tracker(depth=0)
    with pytest.raises(ValueError, match="threshold"):
        runtime.install(threshold=0)


def test_the_runtime_imports_neither_libcst_nor_the_analysis() -> None:
    code = (
        "import sys, slotguard.runtime as r\n"
        "from slotguard.runtime import tracker, watchdog, pytest_plugin\n"
        "with r.track(): pass\n"
        "bad = [m for m in sys.modules if m == 'libcst' or m.startswith("
        "('slotguard.analysis', 'slotguard.rules', 'slotguard.engine'))]\n"
        "assert not bad, bad\n"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


# -- configuration -------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_runtime_table_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pyproject.toml",
        '[tool.slotguard.runtime]\nleaks = "warn"\ndepth = 3\nidle-threshold = 0.5\n',
    )
    config = load(path)
    assert (config.runtime.leaks, config.runtime.depth, config.runtime.idle_threshold) == (
        "warn",
        3,
        0.5,
    )
    assert load(write(tmp_path / "pyproject.toml", "[tool.slotguard]\n")).runtime.leaks == "off"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('leaks = "fial"', "did you mean `fail`?"),
        ("depth = 0", "`runtime.depth`: must be at least 1"),
        ("idle-threshold = 0", "must be a positive number of seconds, not the number 0"),
        ('idle-threshold = "1s"', "must be a positive number of seconds, not the string"),
        ("idle_threshold = 1", "did you mean `runtime.idle-threshold`?"),
    ],
)
def test_the_runtime_table_is_checked(tmp_path: Path, table: str, expected: str) -> None:
    path = write(tmp_path / "pyproject.toml", f"[tool.slotguard.runtime]\n{table}\n")
    with pytest.raises(ConfigError, match="runtime") as error:
        load(path)
    assert expected in str(error.value)

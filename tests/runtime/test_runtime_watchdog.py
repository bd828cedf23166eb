"""The production form on SQLite: ``install(threshold=...)`` logs, from its own
thread, each connection held past the threshold once, with its stack, and
nothing for a connection returned in time; the same for idle transactions.

The same claims against PostgreSQL with asyncpg, in an event loop, are in
``tests/proof/test_runtime.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

import slotguard.runtime as runtime

HERE = Path(__file__).resolve()
THRESHOLD = 0.5
INTERVAL = 0.01


def line_of(marker: str) -> int:
    for number, line in enumerate(HERE.read_text().splitlines(), 1):
        if line.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(f"no line marked {marker}")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[logging.LogRecord]:
        return [record for record in self.records if record.levelno == level]


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, Records]]:
    logger = logging.getLogger(f"slotguard.test.{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    records = Records()
    logger.addHandler(records)
    yield logger, records
    runtime.uninstall()


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    yield engine
    engine.dispose()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(INTERVAL)
    return True


def test_a_connection_held_past_the_threshold_is_logged_once_with_its_stack(
    logged: tuple[logging.Logger, Records], engine: Engine
) -> None:
    logger, records = logged
    runtime.install(threshold=THRESHOLD, interval=INTERVAL, logger=logger)
    with engine.connect():
        time.sleep(THRESHOLD / 10)
    held = engine.connect()  # held too long
    assert wait_for(lambda: bool(records.records))
    time.sleep(20 * INTERVAL)
    (warning,) = records.records
    assert warning.levelno == logging.WARNING
    assert warning.threadName == "slotguard-watchdog"
    message = warning.getMessage()
    first = message.splitlines()[0]
    assert first.startswith("slotguard: SQLAlchemy pool connection held for ")
    assert f"(threshold {THRESHOLD:g} s), taken at " in first
    assert f"{HERE.name}:{line_of('held too long')}" in first
    assert "held = engine.connect()  # held too long" in message
    held.close()
    assert wait_for(lambda: bool(records.at(logging.INFO)))
    (came_back,) = records.at(logging.INFO)
    assert "reported as held too long, came back after" in came_back.getMessage()
    runtime.uninstall()
    assert "slotguard-watchdog" not in [thread.name for thread in threading.enumerate()]


def test_connections_returned_in_time_log_nothing(
    logged: tuple[logging.Logger, Records], engine: Engine
) -> None:
    logger, records = logged
    runtime.install(threshold=THRESHOLD, interval=INTERVAL, logger=logger)
    deadline = time.monotonic() + 2 * THRESHOLD
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
            time.sleep(THRESHOLD / 10)
    assert records.records == []


def test_a_transaction_idle_past_the_threshold_is_logged_with_where_its_holder_waits(
    logged: tuple[logging.Logger, Records], engine: Engine
) -> None:
    logger, records = logged
    runtime.install(threshold=60, idle_threshold=THRESHOLD, interval=INTERVAL, logger=logger)
    with engine.connect() as connection:
        connection.execute(text("select 1"))
        assert wait_for(lambda: bool(records.records))  # waits in the transaction
        connection.commit()
    time.sleep(20 * INTERVAL)
    (warning,) = records.records
    message = warning.getMessage()
    assert message.startswith("slotguard: a sqlalchemy connection idle in transaction for ")
    assert "Where the code holding it waits now (most recent call last):" in message
    assert "assert wait_for(lambda: bool(records.records))  # waits in the transaction" in message


def test_a_long_wait_that_ended_between_two_looks_is_logged_with_the_statement_that_ended_it(
    logged: tuple[logging.Logger, Records], engine: Engine
) -> None:
    logger, records = logged
    runtime.install(threshold=60, idle_threshold=0.05, interval=THRESHOLD, logger=logger)
    with engine.connect() as connection:
        connection.execute(text("select 1"))
        time.sleep(0.1)
        connection.commit()  # ends the wait
    assert wait_for(lambda: bool(records.records))
    (warning,) = records.records
    first = warning.getMessage().splitlines()[0]
    assert first.startswith("slotguard: a sqlalchemy connection was idle in transaction for ")
    assert f"{HERE.name}:{line_of('ends the wait')} in thread MainThread" in first

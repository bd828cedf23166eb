"""Fixtures for the proof tests: one PostgreSQL server per session, and an observer of it.

Without the PostgreSQL binaries these tests are skipped, unless
``SLOTGUARD_REQUIRE_POSTGRES=1`` (set in CI) turns that into a failure, so a
broken CI image cannot pass by skipping. ``SLOTGUARD_PG_BINDIR`` points at
another PostgreSQL's ``bin`` directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from proof.observe import Observer
from proof.postgres import DEFAULT_BINDIR, PostgresInfo, PostgresServer, PostgresUnavailable


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "proof: runs against a real PostgreSQL server started for the test session"
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresInfo]:
    server = PostgresServer(bindir=Path(os.environ.get("SLOTGUARD_PG_BINDIR", DEFAULT_BINDIR)))
    try:
        info = server.start()
    except PostgresUnavailable as exc:
        if os.environ.get("SLOTGUARD_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SLOTGUARD_REQUIRE_POSTGRES=1 but {exc}")
        pytest.skip(f"no PostgreSQL to prove leaks against: {exc}")
    try:
        yield info
    finally:
        server.stop()


@pytest.fixture
def observer(postgres: PostgresInfo) -> Iterator[Observer]:
    """An observer of a server that no earlier test left connections on."""
    with Observer(postgres) as observer:
        before = observer.settle(until=lambda seen: seen.total == 0)
        assert before.total == 0, f"connections left open by an earlier test: {before}"
        yield observer

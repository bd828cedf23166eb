"""The SG5 rules over whole runs: a pool closed in another module of the run
is not reported, and the pool budget adds up the pools of every module."""

from __future__ import annotations

from pathlib import Path

from fixture_harness import FIXTURES, fixture_files, run, run_project

SG501 = FIXTURES / "rules" / "sg501"


def findings(directory: Path, select: tuple[str, ...]) -> list[tuple[str, int, str]]:
    found = run_project(directory, select)
    return sorted(
        (path.relative_to(directory).as_posix(), d.line, d.code)
        for path, diagnostics in found.items()
        for d in diagnostics
    )


def test_a_pool_disposed_in_another_module_of_the_run_is_not_reported() -> None:
    assert findings(SG501 / "project_disposed_elsewhere", ("SG5",)) == []


def test_a_pool_disposed_nowhere_in_the_run_is_reported() -> None:
    assert findings(SG501 / "project_never_disposed", ("SG5",)) == [("app/db.py", 7, "SG501")]


def test_a_module_engine_is_judged_by_the_application_that_imports_it() -> None:
    """The application (`storefront.main`, which registers a lifespan) reaches
    `storefront.db` through `storefront.routes`; the stand-alone script is reached by
    nothing that registers hooks, so its engine is not reported."""
    directory = SG501 / "standalone_script_beside_an_application"
    assert findings(directory, ("SG5",)) == [("storefront/db.py", 9, "SG501")]


def test_a_test_application_is_not_the_application() -> None:
    assert findings(SG501 / "tests_of_an_application", ("SG5",)) == []


def test_a_cached_getter_of_another_module_lends_its_engine() -> None:
    directory = SG501 / "cached_getter_in_another_module"
    assert findings(directory, ("SG5",)) == [("inventory/jobs.py", 23, "SG501")]


def test_a_closer_another_module_does_not_register_is_named() -> None:
    directory = SG501 / "closer_in_another_module"
    found = run_project(directory, ("SG5",))
    (diagnostic,) = [d for diagnostics in found.values() for d in diagnostics]
    assert (Path(diagnostic.path).relative_to(directory).as_posix(), diagnostic.line) == (
        "metrics/db.py",
        6,
    )
    assert diagnostic.message == (
        "`engine` is never disposed: `dispose_engine` closes it but `add_event_handler` "
        "registers `flush_metrics`"
    )


def test_first_lines_of_messages_are_short() -> None:
    """What leaks and where, in about 100 characters (SPEC section 2)."""
    long = [
        (path.name, d.message)
        for directory in ("sg501", "sg502", "sg503")
        for path in fixture_files(f"rules/{directory}")
        for d in run(path)
        if len(d.message.splitlines()[0]) > 110
    ]
    assert not long


SG504 = FIXTURES / "rules" / "sg504"


def test_the_budget_message_shows_the_arithmetic_over_every_module_of_the_run() -> None:
    directory = SG504 / "over_budget"
    found = run_project(directory, ("SG504",))
    db, main = (directory / "app" / name for name in ("db.py", "main.py"))
    assert found[db] == []
    (diagnostic,) = found[main]
    assert diagnostic.line == 12
    assert diagnostic.message == (
        "2 workers x (15 + 20 + 30) = 130 connections > 97 allowed "
        "(max-connections 100 - reserved 3)"
    )
    (label,) = [r.message for r in diagnostic.related if r.span == diagnostic.span]
    assert label == (
        "asyncpg.create_pool: 30 per worker (max_size 30); also counted: "
        f"create_engine at {db.as_posix()}:13 "
        "(pool_size default 5 + max_overflow default 10) = 15, "
        f"create_async_engine at {db.as_posix()}:15 (pool_size 20 + max_overflow 0) = 20; "
        f"not counted: asyncpg.create_pool at {db.as_posix()}:19 "
        "(max_size=size is not a constant)"
    )


def test_pools_within_the_budget_are_not_reported() -> None:
    assert findings(SG504 / "within_budget", ("SG504",)) == []

"""The SG5 rules over whole runs: a pool closed in another module of the run
is not reported, and the pool budget adds up the pools of every module."""

from __future__ import annotations

from pathlib import Path

from fixture_harness import FIXTURES, run_project

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

"""A file's findings never depend on which other files are named (SPEC
section 3): for every file of every fixture project, ``slotguard check FILE``
reports exactly what ``slotguard check .`` reports for it, with no cache,
with the cache a whole run left, and with the cache a run of that one file
left. A fixture project is ``fixtures/demo`` or a directory under
``fixtures`` with its own configuration file; each runs from a copy, as the
user's own project would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixture_harness import FIXTURES

from slotguard.cli import cli

PROJECTS = sorted(
    {path.parent for name in ("slotguard.toml", "pyproject.toml") for path in FIXTURES.rglob(name)}
)
JOBS = ("--jobs", "1")


def _check(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["check", "--output-format", "json", *JOBS, *args])
    assert result.exit_code in (0, 1), result.output
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def _of(findings: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [finding for finding in findings if finding["path"] == path]


def test_every_fixture_project_is_found() -> None:
    names = {project.relative_to(FIXTURES).as_posix() for project in PROJECTS}
    assert "demo" in names
    assert "rules/sg501/project_disposed_elsewhere" in names
    assert len(names) >= 10


@pytest.mark.parametrize(
    "project", PROJECTS, ids=[p.relative_to(FIXTURES).as_posix() for p in PROJECTS]
)
def test_a_named_file_gets_what_the_whole_run_gives_it(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / project.name
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".slotguard_cache"))
    monkeypatch.chdir(copy)
    files = sorted(path.relative_to(copy).as_posix() for path in copy.rglob("*.py"))
    whole = _check(".", "--no-cache")
    assert {finding["path"] for finding in whole} <= set(files)
    for name in files:
        expected = _of(whole, name)
        assert _check(name, "--no-cache") == expected, f"{name}, no cache"
    _check(".")  # leaves the cache of a whole run
    for name in files:
        expected = _of(whole, name)
        assert _check(name) == expected, f"{name}, after a whole run"
    shutil.rmtree(copy / ".slotguard_cache")
    for name in files:
        expected = _of(whole, name)
        assert _check(name) == expected, f"{name}, first run of the file"
        assert _check(name) == expected, f"{name}, again, from the cache it left"
    assert _check(".") == whole, "a whole run from the cache that file runs left"


def test_the_demo_leak_of_application_state_is_found_when_only_its_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool is put on ``app.state`` by a module the route does not import."""
    copy = tmp_path / "demo"
    shutil.copytree(FIXTURES / "demo", copy)
    monkeypatch.chdir(copy)
    found = _check("app/routes/orders.py", "--no-cache")
    assert ("SG101", 73) in {(finding["code"], finding["line"]) for finding in found}


def test_standard_input_named_after_a_file_is_checked_with_its_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor sends its unsaved buffer: checked as that file of its project."""
    copy = tmp_path / "demo"
    shutil.copytree(FIXTURES / "demo", copy)
    monkeypatch.chdir(copy)
    route = (copy / "app" / "routes" / "orders.py").read_text()
    result = CliRunner().invoke(
        cli,
        ["check", "--output-format", "json", "--stdin-filename", "app/routes/orders.py", "-"],
        input="# unsaved edit\n" + route,
    )
    found = {(finding["code"], finding["line"]) for finding in json.loads(result.stdout)}
    assert ("SG101", 74) in found, found

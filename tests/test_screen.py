"""The screen never changes a finding: a run that parses every file the
prefilter lets through (``SLOTGUARD_SCREEN=off``) reports exactly what a
screened run reports, over every fixture project and over real trees, and
the screen does defer files there (or nothing would be compared)."""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import pytest
from fixture_harness import FIXTURES, fixture_project, settings_for

from slotguard import config as configuration
from slotguard import engine
from slotguard.analysis.index import ProjectIndex
from slotguard.diagnostic import Diagnostic
from slotguard.engine import SCREEN_SWITCH, check_paths
from slotguard.screen import may_produce
from slotguard.settings import Settings
from slotguard.view import View

REAL_TREES = {
    "pools and sessions": ("sqlalchemy.pool", "sqlalchemy.ext.asyncio", "asyncpg", "psycopg_pool"),
    "drivers and a framework": ("psycopg", "aiopg", "starlette"),
}
"""Installed with the test extras: the pool and session implementations of
the libraries the model knows, whose modules reach each other by relative
imports; drivers; an application framework with startup and shutdown hooks."""


def _both_ways(
    monkeypatch: pytest.MonkeyPatch, files: Sequence[Path], settings: Settings
) -> tuple[list[Diagnostic], list[Diagnostic], int]:
    """The findings of a screened run and of an unscreened one, and how many
    files the screen deferred."""
    deferred = 0
    examine = engine.examine

    def counted(task: engine.Task, settings: Settings) -> engine.Examined:
        nonlocal deferred
        examined = examine(task, settings)
        deferred += examined.outcome.verdict is engine.Verdict.DEFERRED
        return examined

    with monkeypatch.context() as patched:
        patched.delenv(SCREEN_SWITCH, raising=False)
        patched.setattr(engine, "examine", counted)
        screened = check_paths(files, settings, {}).diagnostics
    with monkeypatch.context() as patched:
        patched.setenv(SCREEN_SWITCH, "off")
        unscreened = check_paths(files, settings, {}).diagnostics
    return screened, unscreened, deferred


def _assert_same(screened: list[Diagnostic], unscreened: list[Diagnostic]) -> None:
    hidden = [d for d in unscreened if d not in screened]
    invented = [d for d in screened if d not in unscreened]
    assert not hidden, "the screen hides findings:\n" + "\n".join(map(repr, hidden))
    assert not invented, "only the screened run reports:\n" + "\n".join(map(repr, invented))


def _fixture_projects() -> dict[Path, list[Path]]:
    """Each fixture project, and each fixture file that is a project by itself."""
    projects: dict[Path, list[Path]] = {}
    for path in sorted(FIXTURES.rglob("*.py")):
        root, files = fixture_project(path)
        key = root if len(files) > 1 or files[0] != path else path
        projects[key] = files
    return projects


def test_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    deferred = 0
    for files in _fixture_projects().values():
        screened, unscreened, deferred_here = _both_ways(monkeypatch, files, settings_for(files[0]))
        _assert_same(screened, unscreened)
        deferred += deferred_here
    assert deferred, "the screen deferred no fixture: nothing compared"


@pytest.mark.parametrize("name", sorted(REAL_TREES))
def test_real_trees(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    files: list[Path] = []
    for package in REAL_TREES[name]:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"{package} is not installed (the test extras install it)")
        files += sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.py"))
    settings = Settings.from_config(configuration.Config(), select=["SG"], use_cache=False)
    screened, unscreened, deferred = _both_ways(monkeypatch, files, settings)
    assert deferred, "the screen deferred no file: nothing compared"
    _assert_same(screened, unscreened)


MODEL = Settings().model


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy.orm import Session\n\ndef f(s: Session): ...\n",
        "import sqlalchemy as sa\n\nx = sa.orm.sessionmaker()\n",
        "def f(s: 'sqlalchemy.orm.Session'): ...\nimport sqlalchemy\n",
        "from fastapi import Depends\n\ndef f(db=Depends(get_db)): ...\n",
        "class Service:\n    def close(self):\n        self.pool.close()\n",
        "def cleanup(conn):\n    conn.close()\n",
        "def give_back(pool, conn):\n    pool.putconn(conn)\n",
        "import atexit\n\natexit.register(stop)\n",
        "app.add_event_handler('shutdown', stop)\n",
        "async def f(stack, pool):\n    await stack.enter_async_context(pool)\n",
        "with app.state.engine:\n    pass\n",
    ],
    ids=[
        "annotation",
        "module-alias",
        "string-annotation",
        "dependency-marker",
        "close-on-attribute",
        "releasing-helper",
        "handing-back",
        "atexit",
        "hook-method",
        "exit-stack",
        "with-kept-value",
    ],
)
def test_what_the_screen_lets_through(source: str) -> None:
    assert may_produce(ast.parse(source), MODEL, "app.x")


@pytest.mark.parametrize(
    "source",
    [
        "import sqlalchemy as sa\n\nt = sa.Table('t', sa.MetaData(), sa.Column('i', sa.Integer))\n",
        "from sqlalchemy import select\n\ndef q(model):\n    return select(model).limit(1)\n",
        "def f(items):\n    for item in items:\n        yield item.name\n",
    ],
    ids=["columns", "select", "plain-code"],
)
def test_what_the_screen_defers(source: str) -> None:
    assert not may_produce(ast.parse(source), MODEL, "app.x")


def test_project_names_with_a_meaning_let_a_file_through() -> None:
    from slotguard.analysis.index import ModuleSummary, Symbol, SymbolKind
    from slotguard.view import Table

    summary = ModuleSummary(
        "app.db",
        (
            ("get_db", Symbol(SymbolKind.PROVIDER, "sqlalchemy.orm.Session")),
            ("helper", Symbol(SymbolKind.FUNCTION)),
            ("Plain", Symbol(SymbolKind.CLASS)),
            ("Plain.run", Symbol(SymbolKind.FUNCTION)),
            ("Pool", Symbol(SymbolKind.CLASS)),
            ("Pool.take", Symbol(SymbolKind.ACQUIRER, "asyncpg.Connection")),
            ("pool", Symbol(SymbolKind.INSTANCE, "app.db.Pool")),
            ("plain", Symbol(SymbolKind.INSTANCE, "app.db.Plain")),
        ),
    )
    view = View({"app.db": Table.of(summary)})
    assert view.names() == {"get_db", "Pool", "take", "pool"}
    uses = "from app.db import {}\n\ndef f():\n    return {}()\n"
    assert may_produce(ast.parse(uses.format("get_db", "get_db")), MODEL, "app.x", index=view)
    assert may_produce(ast.parse(uses.format("Pool", "Pool")), MODEL, "app.x", index=view)
    assert not may_produce(ast.parse(uses.format("helper", "helper")), MODEL, "app.x", index=view)
    assert not may_produce(ast.parse(uses.format("Plain", "Plain")), MODEL, "app.x", index=view)


def test_the_view_answers_every_question_of_a_project_index() -> None:
    """The analysis asks the project only through ``ProjectIndex``'s methods;
    a method the view does not serve would read an empty index, silently."""
    public = {
        name
        for name, value in vars(ProjectIndex).items()
        if callable(value) and (not name.startswith("_") or name == "__bool__")
    } - {"of", "__init__"}
    assert public <= set(vars(View)), public - set(vars(View))

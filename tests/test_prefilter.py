"""The prefilter never hides a finding: a run that analyses every file
(``SLOTGUARD_PREFILTER=off``) reports exactly what an ordinary run reports,
over every fixture and over real library code; and the words that let a file
through come from the model and the user's configuration."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from fixture_harness import FIXTURES, settings_for

from slotguard import config as configuration
from slotguard import prefilter
from slotguard.diagnostic import Diagnostic
from slotguard.engine import PREFILTER_SWITCH, RunResult, check_paths, may_have_findings
from slotguard.settings import Settings

REAL_PACKAGES = (
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.pool",
    "sqlalchemy.testing",
    "asyncpg",
    "psycopg_pool",
)
"""Installed with the test extras: the pool and session implementations of
the libraries the model knows, whose modules reach each other by relative
imports (the prefilter must follow the project index), and SQLAlchemy's test
fixtures, which check connections out by hand."""


def _both_ways(
    monkeypatch: pytest.MonkeyPatch,
    files: Sequence[Path],
    settings: Settings,
    project: Sequence[Path] = (),
) -> tuple[list[Diagnostic], list[Diagnostic], int]:
    """The findings of one run with the prefilter and without it, and how many
    files the prefilter stopped. When it stopped none, the second run would
    do exactly what the first did, so it is skipped."""

    def run() -> RunResult:
        shown = {path: path.as_posix() for path in files}
        return check_paths(files, settings, shown, project=project)

    with monkeypatch.context() as patched:
        patched.delenv(PREFILTER_SWITCH, raising=False)
        result = run()
    filtered = result.diagnostics
    stopped = sum(not file.analysed for file in result.files)
    if not stopped:
        return filtered, filtered, stopped
    with monkeypatch.context() as patched:
        patched.setenv(PREFILTER_SWITCH, "off")
        unfiltered = run().diagnostics
    return filtered, unfiltered, stopped


def _assert_same(filtered: list[Diagnostic], unfiltered: list[Diagnostic]) -> None:
    """Identical findings, except that a file the prefilter stops is never
    parsed, so a syntax error in it shows only when everything is analysed."""
    not_parsed = [d for d in unfiltered if d.code == "SG000" and d not in filtered]
    assert all("syntax error" in d.message for d in not_parsed), not_parsed
    hidden = [d for d in unfiltered if d not in filtered and d not in not_parsed]
    invented = [d for d in filtered if d not in unfiltered]
    assert not hidden, "the prefilter hides findings:\n" + "\n".join(map(repr, hidden))
    assert not invented, "only the prefiltered run reports:\n" + "\n".join(map(repr, invented))


def _configuration_groups(files: Iterable[Path]) -> dict[Path | None, list[Path]]:
    """Fixture files by the configuration file they use."""
    groups: dict[Path | None, list[Path]] = {}
    for path in files:
        groups.setdefault(configuration.discover(path.parent), []).append(path)
    return groups


FIXTURE_SETS = ("rules", "demo")
"""The fixture sets with files the prefilter stops (``fixes`` and ``proof``
hold database code only: both ways would be the same run)."""


@pytest.mark.parametrize("directory", FIXTURE_SETS)
def test_fixtures_analysed_as_projects(directory: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fixture set as one run, as ``slotguard check fixtures/<set>`` does:
    the project index lets through files that only use a neighbour's names."""
    files = sorted((FIXTURES / directory).rglob("*.py"))
    assert files
    stopped = 0
    for group in _configuration_groups(files).values():
        filtered, unfiltered, stopped_here = _both_ways(monkeypatch, group, settings_for(group[0]))
        _assert_same(filtered, unfiltered)
        stopped += stopped_here
    assert stopped, f"the prefilter stopped no file of fixtures/{directory}: nothing compared"


def test_demo_files_analysed_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file of the demo application alone, as pre-commit runs it: the
    rest of the project is read for what it tells the file, so the prefilter
    decides with what the modules it imports export."""
    project = sorted((FIXTURES / "demo").rglob("*.py"))
    for path in project:
        filtered, unfiltered, _ = _both_ways(monkeypatch, [path], settings_for(path), project)
        _assert_same(filtered, unfiltered)


def test_real_library_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool and session implementations of the libraries the model knows,
    as installed by the test extras, checked as one project."""
    files: list[Path] = []
    for package in REAL_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"{package} is not installed (the test extras install it)")
        files += sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.py"))
    settings = Settings.from_config(configuration.Config(), select=["SG"], use_cache=False)
    filtered, unfiltered, stopped = _both_ways(monkeypatch, files, settings)
    assert stopped, "the prefilter stopped no file: nothing to compare"
    _assert_same(filtered, unfiltered)


WRAPPER_CONFIG = """\
[tool.slotguard.resources]
release-functions = ["team.db.checkin"]

[[tool.slotguard.resources.acquire]]
call = "team.db.checkout"
kind = "pooled-connection"
await = true
returned-by = ["checkin"]
"""

WRAPPER_USER = b"""\
from .db import checkout


async def handler():
    conn = await checkout()
    return await conn.fetch("select 1")
"""


def test_configured_wrapper_names_let_a_file_through(tmp_path: Path) -> None:
    """A file that imports no database library, only the team's configured
    wrapper (by a relative import, so only its name says what it is), is
    analysed, and its leak found."""
    (tmp_path / "pyproject.toml").write_text(WRAPPER_CONFIG)
    package = tmp_path / "team"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "db.py").write_text('"""The wrapper (not analysed here)."""\n')
    handler = package / "handlers.py"
    handler.write_bytes(WRAPPER_USER)
    configured = Settings.from_config(configuration.load(tmp_path / "pyproject.toml"))
    assert may_have_findings(WRAPPER_USER, configured)
    assert not may_have_findings(WRAPPER_USER, Settings())
    settings = Settings.from_config(
        configuration.load(tmp_path / "pyproject.toml"), select=["SG101"], use_cache=False
    )
    result = check_paths([handler], settings, {})
    assert [(d.code, d.line) for d in result.diagnostics] == [("SG101", 5)]


def test_the_switch_analyses_every_file(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not may_have_findings(b"import os\n", Settings())
    monkeypatch.setenv(PREFILTER_SWITCH, "off")
    assert may_have_findings(b"import os\n", Settings())


LEAK_BODY = b"""

async def load(pool: asyncpg.Pool):
    conn = await pool.acquire()
    return await conn.fetch("select 1")
"""


@pytest.mark.parametrize(
    "imports",
    [
        b"\xef\xbb\xbfimport asyncpg",
        b"import os; import asyncpg",
        b"import os, \\\n    asyncpg",
        b"import os, \\\r\n    asyncpg",
        b"from asyncpg import (  # see (the docs)\n    Pool,\n)\nimport asyncpg",
        b"x = 1; from asyncpg import Pool\nimport asyncpg",
    ],
    ids=["bom", "semicolon", "continuation", "crlf-continuation", "comment-in-list", "after-code"],
)
def test_imports_written_unusually_still_let_the_file_through(
    imports: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Review findings: each of these was skipped by the prefilter although
    a full analysis reports the leak."""
    path = tmp_path / "leak.py"
    path.write_bytes(imports + LEAK_BODY)
    settings = Settings.from_config(configuration.Config(), use_cache=False)
    assert may_have_findings(path.read_bytes(), settings)
    filtered, unfiltered, _ = _both_ways(monkeypatch, [path], settings)
    _assert_same(filtered, unfiltered)
    assert {d.code for d in filtered} >= {"SG101"}


@pytest.mark.parametrize(
    ("source", "through"),
    [
        (b"class Order(Base):\n    total = Column(Integer)\n", True),
        (b"class Order(Base):\n    total = sa.Column(sa.Integer)\n", True),
        (b"class Order(db.Model):\n    total = db.Column(db.Integer)\n", True),
        (b"class Order(Base):\n    total: Mapped[int]\n", True),
        (b"class Order(Base):\n    total: Mapped[int] = mapped_column()\n", True),
        (b"class Order(Base):\n    total = deferred(Column(Text))\n", True),
        (b"orders = Table('orders', meta,\n    Column('id', Integer),\n)\n", False),
        (b"total = Column(Integer)\n", False),
        (b"class Form:\n    total = IntegerField()\n", False),
    ],
)
def test_a_module_that_declares_columns_is_known(source: bytes, through: bool) -> None:
    """When a module that is analysed imports it, it is analysed too: its
    summary says which attributes are columns (the fix of the importer may
    let their values outlive a session). On its own, the prefilter stops it."""
    assert prefilter.declares_columns(source) is through
    assert not may_have_findings(source, Settings())

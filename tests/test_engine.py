"""The run: the project index across modules, the cache, parallelism, and
the prefilter's soundness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixture_harness import FIXTURES

from slotguard import engine
from slotguard.engine import check_paths
from slotguard.project import ProjectFile, Scan, link, project_root, scan_imports
from slotguard.settings import Settings

SLOTGUARD = Path(sys.executable).with_name("slotguard")

PROJECT = {
    "pyproject.toml": "[tool.slotguard]\n",
    "app/__init__.py": "from .db import SessionLocal\n",
    "app/db.py": """\
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

engine = create_engine("postgresql://localhost/app")
SessionLocal = sessionmaker(bind=engine)


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


def checkout():
    return engine.connect()


def give_back(conn):
    conn.close()
""",
    "app/main.py": """\
import asyncpg
from fastapi import FastAPI

from app.routes import router

app = FastAPI()


@app.on_event("startup")
async def startup():
    app.state.pool = await asyncpg.create_pool("postgresql://localhost/app")
""",
    "app/routes.py": """\
from fastapi import APIRouter, Request

from app import SessionLocal
from app.db import checkout, get_db, give_back

router = APIRouter()


def never_closed():
    db = SessionLocal()
    return db.execute("select 1").all()


def through_the_wrapper():
    conn = checkout()
    return conn.execute("select 1").all()


def released_by_the_helper():  # correct (SG108, opt-in, says: by hand)
    conn = checkout()
    try:
        return conn.execute("select 1").all()
    finally:
        give_back(conn)


def by_hand():
    return next(get_db())


async def from_state(request: Request):
    conn = await request.app.state.pool.acquire()
    return await conn.fetch("select 1")
""",
}
EXPECTED = {
    ("app/db.py", 4, "SG501"),
    ("app/main.py", 11, "SG502"),
    ("app/routes.py", 10, "SG102"),
    ("app/routes.py", 15, "SG102"),
    ("app/routes.py", 28, "SG105"),
    ("app/routes.py", 32, "SG101"),
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, text in PROJECT.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def findings(root: Path, *args: str) -> set[tuple[str, int, str]]:
    result = subprocess.run(
        [str(SLOTGUARD), "check", *args, "--output-format", "json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    return {(f["path"], f["line"], f["code"]) for f in json.loads(result.stdout)}


def test_modules_see_what_their_imports_define(project: Path) -> None:
    """Factories, acquiring wrappers, releasing helpers and dependencies
    defined in one module, application state typed in another."""
    assert findings(project, ".", "--no-cache") == EXPECTED


def test_a_named_file_is_checked_with_its_whole_project(project: Path) -> None:
    """Pre-commit passes only the changed file; the rest of the project is
    still read (but not reported), the application state written by a
    module the file does not import included."""
    for named in ("app/routes.py", "app/main.py", "app/db.py"):
        found = findings(project, named, "--no-cache")
        assert found == {finding for finding in EXPECTED if finding[0] == named}, named


def test_cache_and_workers_give_the_same_results(project: Path) -> None:
    cold = findings(project, ".", "--jobs", "1")
    assert (project / ".slotguard_cache").is_dir()
    warm = findings(project, ".", "--jobs", "1")
    # Four files stay below the worker threshold: `--jobs 2` runs in one
    # process (test_parallel_run_over_many_files starts workers).
    parallel = findings(project, ".", "--no-cache", "--jobs", "2")
    assert cold == warm == parallel == EXPECTED


def test_a_warm_run_does_not_import_libcst(project: Path) -> None:
    findings(project, ".")
    probe = (
        "import sys\n"
        "from slotguard.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('libcst' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "check", ".", "--output-format", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stderr.strip().splitlines()[-1] == "False"
    assert {(f["path"], f["line"], f["code"]) for f in json.loads(result.stdout)} == EXPECTED


def test_a_changed_import_invalidates_its_importers(project: Path) -> None:
    assert findings(project, ".") == EXPECTED
    db = project / "app" / "db.py"
    db.write_text(db.read_text().replace("def checkout():", "def checkout_():"))
    assert ("app/routes.py", 15, "SG102") not in findings(project, ".")


def test_parallel_run_over_many_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Enough files to start workers; the results match a sequential run."""
    source = (FIXTURES / "rules" / "sg201" / "early_exits.py").read_text()
    for index in range(30):
        (tmp_path / f"module_{index}.py").write_text(source)
    files = sorted(tmp_path.glob("*.py"))
    settings = Settings(use_cache=False, jobs=1)
    one = check_paths(files, settings, {}).diagnostics
    submitted: list[str] = []
    submit = engine._Run._submit

    def counted(run: engine._Run, job: Any) -> Any:
        submitted.append(job.shown)
        return submit(run, job)

    monkeypatch.setattr(engine._Run, "_submit", counted)
    two = check_paths(files, Settings(use_cache=False, jobs=2), {}).diagnostics
    assert len(submitted) == 30, "the files did not go to worker processes"
    assert one == two and len(one) > 30


def test_import_scanning() -> None:
    data = (
        b"import os, app.db as db\n"
        b"from . import routes\n"
        b"from .models import (\n    User,\n    Order as O,\n)\n"
        b"from ..core import settings  # comment\n"
    )
    assert scan_imports(data, "app.api.views", is_package=False) == {
        "os",
        "app.db",
        "app.api",
        "app.api.routes",
        "app.api.models",
        "app.api.models.User",
        "app.api.models.Order",
        "app.api.models.O",
        "app.core",
        "app.core.settings",
    }


def test_import_scanning_reads_what_the_prefilter_reads() -> None:
    """The import graph and the prefilter read imports the same way: after a
    BOM, after a `;`, across a continuation, with comments in a list."""
    data = (
        b"\xef\xbb\xbfimport os; from .db import (  # the (session) helpers\n"
        b"    get_db,\n)\n"
        b"import json, \\\n    app.settings\n"
        b"from .models import *\n"
    )
    assert scan_imports(data, "app.api", is_package=False) == {
        "os",
        "app.db",
        "app.db.get_db",
        "json",
        "app.settings",
        "app.models",
    }


def test_order_puts_imports_first_and_breaks_cycles(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": b"from .b import thing\n",
        "pkg/a.py": b"import pkg.b\n",
        "pkg/b.py": b"from pkg import c\n",
        "pkg/c.py": b"x = 1\n",
    }
    items = []
    for name, data in files.items():
        module = name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        package = name.endswith("__init__.py")
        imports = tuple(sorted(scan_imports(data, module, package)))
        items.append(
            ProjectFile(tmp_path / name, name, module, package, Scan(imports, False, False))
        )
    components = link(items)
    order = [[item.module for item in component] for component in components]
    flat = [module for component in order for module in component]
    assert flat.index("pkg.c") < flat.index("pkg.b") < flat.index("pkg.a")
    assert ["pkg", "pkg.b"] in order, "the package and pkg.b import each other: one component"


def test_the_project_is_the_configuration_directory_else_the_repository(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    nested = tmp_path / "repo" / "service" / "app"
    nested.mkdir(parents=True)
    (nested / "x.py").write_text("")
    assert project_root([nested / "x.py"], None) == tmp_path / "repo"
    configuration = tmp_path / "repo" / "service" / "slotguard.toml"
    assert project_root([nested / "x.py"], configuration) == tmp_path / "repo" / "service"
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "y.py").write_text("")
    assert project_root([lone / "y.py"], None) == lone


def test_workers_give_what_one_process_gives_on_a_project_with_cycles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo's modules import each other: analysed by workers in whatever
    order they finish, each still sees what it would see one after the other."""
    files = sorted((FIXTURES / "demo").rglob("*.py"))
    shown = {path: path.as_posix() for path in files}
    one = check_paths(files, Settings(use_cache=False, jobs=1), shown).diagnostics
    monkeypatch.setattr(engine, "PARALLEL_THRESHOLD", 1)
    submitted: list[str] = []
    submit = engine._Run._submit

    def counted(run: engine._Run, task: Any) -> Any:
        submitted.append(task.shown)
        return submit(run, task)

    monkeypatch.setattr(engine._Run, "_submit", counted)
    two = check_paths(files, Settings(use_cache=False, jobs=2), shown).diagnostics
    assert submitted, "no file went to a worker process"
    assert one == two and one


def test_a_changed_state_writer_retypes_the_state_its_readers_see(project: Path) -> None:
    """The state is worked out again when a module that writes it changes
    (and only then is the last run's kept)."""
    assert ("app/routes.py", 32, "SG101") in findings(project, "app/routes.py")
    main = project / "app" / "main.py"
    main.write_text(main.read_text().replace("app.state.pool =", "app.state.other ="))
    assert ("app/routes.py", 32, "SG101") not in findings(project, "app/routes.py")
    main.write_text(main.read_text().replace("app.state.other =", "app.state.pool ="))
    assert ("app/routes.py", 32, "SG101") in findings(project, "app/routes.py")

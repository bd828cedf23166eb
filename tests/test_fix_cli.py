"""``slotguard fix`` and ``check --fix`` on the command line: what is
written, how, what is only shown, what the summary says (SPEC sections 3
and 7)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from slotguard import writes
from slotguard.cli import cli
from slotguard.fixes import fixers, no_fix_reason
from slotguard.rules import all_rules

POOLED = """\
import asyncpg


async def load(pool: asyncpg.Pool, key):
    conn = await pool.acquire()
    if key is None:
        return None
    try:
        return await conn.fetchrow("select $1", key)
    finally:
        await pool.release(conn)
"""
POOLED_FIXED = """\
import asyncpg


async def load(pool: asyncpg.Pool, key):
    async with pool.acquire() as conn:
        if key is None:
            return None
        return await conn.fetchrow("select $1", key)
"""
PSYCOPG2 = """\
from psycopg2.pool import SimpleConnectionPool


def report(pool: SimpleConnectionPool):
    with pool.getconn() as conn:
        conn.cursor().execute("select 1")
"""
PSYCOPG2_FIXED = """\
from psycopg2.pool import SimpleConnectionPool


def report(pool: SimpleConnectionPool):
    conn = pool.getconn()
    try:
        with conn:
            conn.cursor().execute("select 1")
    finally:
        pool.putconn(conn)
"""
UNFIXABLE = """\
import aiopg


async def load(dsn):
    conn = await aiopg.connect(dsn)
    cur = await conn.cursor()
    await cur.execute("select 1")
"""
BROKEN = """\
import asyncpg


async def load(pool: asyncpg.Pool):
    conn = await pool.acquire(
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pooled.py").write_text(POOLED)
    (tmp_path / "legacy.py").write_text(PSYCOPG2)
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--no-cache"])
    return result.exit_code, result.stdout, result.stderr


def read(path: Path) -> str:
    return path.read_bytes().decode()


def test_fix_writes_the_fixed_files_and_says_what_it_did(project: Path) -> None:
    code, out, err = invoke("fix", ".")
    assert read(project / "pooled.py") == POOLED_FIXED
    assert read(project / "legacy.py") == PSYCOPG2_FIXED
    assert "slotguard: fixed 2 findings in 2 files (SG104 (1), SG201 (1))" in err
    assert code == 0 and out == "" and "All checks passed." in err


def test_check_fix_equals_fix(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _, fix_out, fix_err = invoke("fix", ".")
    fixed = {path.name: path.read_bytes() for path in project.glob("*.py")}
    other = tmp_path_factory.mktemp("again")
    (other / "pooled.py").write_text(POOLED)
    (other / "legacy.py").write_text(PSYCOPG2)
    os.chdir(other)
    _, check_out, check_err = invoke("check", "--fix", ".")
    assert {path.name: path.read_bytes() for path in other.glob("*.py")} == fixed
    assert (check_out, check_err) == (fix_out, fix_err)


def test_diff_shows_the_change_writes_nothing_and_exits_1(project: Path) -> None:
    before = {path: (path.read_bytes(), path.stat().st_ino) for path in project.glob("*.py")}
    code, out, err = invoke("fix", "--diff", ".")
    assert code == 1
    assert "--- a/pooled.py\n+++ b/pooled.py\n" in out
    assert "-    conn = await pool.acquire()\n" in out
    assert "+    async with pool.acquire() as conn:\n" in out
    assert "+    conn = pool.getconn()\n" in out
    assert "slotguard: would fix 2 findings in 2 files" in err
    assert {path: (path.read_bytes(), path.stat().st_ino) for path in project.glob("*.py")} == (
        before
    )
    assert not list(project.glob(".*.tmp"))


def test_diff_exits_0_when_nothing_would_change(project: Path) -> None:
    (project / "pooled.py").write_text(POOLED_FIXED)
    (project / "legacy.py").write_text(UNFIXABLE)
    code, out, err = invoke("fix", "--diff", ".")
    assert code == 0 and out == ""
    assert "would fix 0 findings in 0 files" in err
    assert read(project / "legacy.py") == UNFIXABLE


def test_check_diff_is_fix_diff(project: Path) -> None:
    assert invoke("check", "--diff", ".") == invoke("fix", "--diff", ".")


def test_diff_of_a_file_without_a_final_newline(project: Path) -> None:
    (project / "legacy.py").unlink()
    (project / "pooled.py").write_text(POOLED.rstrip("\n"))
    code, out, _ = invoke("fix", "--diff", ".")
    assert code == 1
    assert "-        await pool.release(conn)\n\\ No newline at end of file\n" in out
    assert out.endswith("\\ No newline at end of file\n")


@pytest.mark.parametrize(
    ("options", "fixed", "untouched"),
    [
        (["--select", "SG104"], "legacy.py", "pooled.py"),
        (["--ignore", "SG104"], "pooled.py", "legacy.py"),
        (["--select", "SG1", "--ignore", "SG101"], "legacy.py", "pooled.py"),
        (["--select", "SG2"], "pooled.py", "legacy.py"),
    ],
)
def test_selection_restricts_what_is_fixed(
    project: Path, options: list[str], fixed: str, untouched: str
) -> None:
    original = read(project / untouched)
    invoke("fix", *options, ".")
    assert read(project / untouched) == original
    assert read(project / fixed) in (POOLED_FIXED, PSYCOPG2_FIXED)


def test_unsafe_fixes_only_when_asked(project: Path) -> None:
    source = """\
from psycopg_pool import ConnectionPool

pool = ConnectionPool("dbname=app")


def load():
    conn = pool.getconn()
    try:
        return conn.execute("select 1").fetchall()
    finally:
        pool.putconn(conn)
"""
    (project / "legacy.py").unlink()
    (project / "pooled.py").write_text(source)
    code, _, err = invoke("fix", "--extend-select", "SG108", ".")
    assert code == 1 and read(project / "pooled.py") == source
    assert (
        "pooled.py:7:12: SG108 fixable with --unsafe-fixes: rewrite as "
        "`with pool.connection() as conn:`"
    ) in err
    invoke("fix", "--extend-select", "SG108", "--unsafe-fixes", ".")
    assert "    with pool.connection() as conn:\n" in read(project / "pooled.py")


def test_summary_names_each_finding_fixed_fixable_or_not_and_why(project: Path) -> None:
    (project / "direct.py").write_text(UNFIXABLE)
    (project / "declined.py").write_text(
        POOLED.replace("    finally:\n", "    # Always give it back.\n    finally:\n").replace(
            "    if key is None:\n        return None\n", ""
        )
    )
    code, _, err = invoke("fix", "--extend-select", "SG108", ".")
    assert code == 1
    assert "slotguard: fixed 2 findings in 2 files" in err
    assert "not fixed:" in err
    declined = "a comment in the `finally` has nowhere to go"
    assert f"  declined.py:5:12: SG108 not fixable: {declined}" in err
    assert (
        "  direct.py:5:12: SG103 fixable with --unsafe-fixes: enter `conn` with "
        "`async with await aiopg.connect(dsn) as conn:` up to its last use"
    ) in err
    # Each finding fixed is named where it was, with what was done.
    assert "  pooled.py:5:12: SG201 fixed: rewrite as `async with pool.acquire() as conn:`" in err
    assert "  legacy.py:" in err.split("not fixed:")[0]


@pytest.mark.parametrize(
    "rule", [rule for rule in all_rules() if rule.code not in fixers()], ids=lambda r: r.code
)
def test_rules_without_a_fixer_say_why_in_their_fix_safety_section(rule: type) -> None:
    documentation = rule.documentation()  # type: ignore[attr-defined]
    section = documentation.split("## Fix safety", 1)[1].strip()
    first = " ".join(section.split()).split(". ")[0].rstrip(".")
    assert no_fix_reason(rule.code) == first[:1].lower() + first[1:]  # type: ignore[attr-defined]
    assert no_fix_reason(rule.code).startswith("there is no automatic fix")  # type: ignore[attr-defined]


def test_the_summary_gives_the_reason_of_a_kept_past_its_scope_finding(project: Path) -> None:
    (project / "globals.py").write_text(
        "from sqlalchemy.orm import sessionmaker\n\n"
        "SessionLocal = sessionmaker()\nsession = SessionLocal()\n"
    )
    _, _, err = invoke("fix", ".")
    assert f"  globals.py:4:11: SG303 not fixable: {no_fix_reason('SG303')}" in err


def test_a_file_that_does_not_parse_is_reported_and_never_written(project: Path) -> None:
    broken = project / "broken.py"
    broken.write_text(BROKEN)
    identity = broken.stat().st_ino
    code, out, err = invoke("fix", ".")
    assert code == 1
    assert "broken.py:" in out and "SG000" in out
    assert "  broken.py:5:30: SG000 not fixable: there is no automatic fix" in err
    assert broken.read_text() == BROKEN and broken.stat().st_ino == identity
    assert read(project / "pooled.py") == POOLED_FIXED


def test_a_suppressed_finding_is_not_fixed(project: Path) -> None:
    source = POOLED.replace("conn = await pool.acquire()", "conn = await pool.acquire()  # noqa")
    (project / "pooled.py").write_text(source)
    invoke("fix", ".")
    assert read(project / "pooled.py") == source


def test_encoding_bom_line_endings_and_mode_are_kept(project: Path) -> None:
    target = project / "pooled.py"
    latin = "# -*- coding: latin-1 -*-\n# café\n" + POOLED
    target.write_bytes(latin.replace("\n", "\r\n").encode("latin-1"))
    os.chmod(target, 0o640)
    invoke("fix", "pooled.py")
    expected = "# -*- coding: latin-1 -*-\n# café\n" + POOLED_FIXED
    assert target.read_bytes() == expected.replace("\n", "\r\n").encode("latin-1")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    bom = "\N{BYTE ORDER MARK}# Caf\N{LATIN SMALL LETTER E WITH ACUTE}\n"
    target.write_bytes((bom + POOLED).encode())
    invoke("fix", "pooled.py")
    assert target.read_bytes() == (bom + POOLED_FIXED).encode()


def test_writes_replace_the_file_by_renaming_a_temporary_one(project: Path) -> None:
    target = project / "pooled.py"
    identity = target.stat().st_ino
    invoke("fix", "pooled.py")
    assert read(target) == POOLED_FIXED
    assert target.stat().st_ino != identity
    assert sorted(path.name for path in project.iterdir()) == ["legacy.py", "pooled.py"]


def test_a_failed_write_leaves_the_file_and_no_temporary_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(source: object, destination: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writes.os, "replace", refuse)
    code, _, err = invoke("fix", ".")
    assert "slotguard: pooled.py: not written: No space left on device" in err
    assert read(project / "pooled.py") == POOLED
    assert read(project / "legacy.py") == PSYCOPG2
    assert sorted(path.name for path in project.iterdir()) == ["legacy.py", "pooled.py"]
    assert "fixed 0 findings in 0 files" in err
    assert code == 1


def test_write_atomically_keeps_the_mode_and_cleans_up_after_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "module.py"
    target.write_bytes(b"old\n")
    os.chmod(target, 0o751)
    writes.write_atomically(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o751

    class Interrupted(BaseException):
        pass

    def interrupt(descriptor: int) -> None:
        raise Interrupted

    monkeypatch.setattr(writes.os, "fsync", interrupt)
    with pytest.raises(Interrupted):
        writes.write_atomically(target, b"newer\n")
    assert target.read_bytes() == b"new\n"
    assert [path.name for path in tmp_path.iterdir()] == ["module.py"]


def test_write_atomically_through_a_symbolic_link_rewrites_the_target(tmp_path: Path) -> None:
    target = tmp_path / "real" / "module.py"
    target.parent.mkdir()
    target.write_bytes(b"old\n")
    link = tmp_path / "module.py"
    link.symlink_to(target)
    writes.write_atomically(link, b"new\n")
    assert link.is_symlink()
    assert target.read_bytes() == b"new\n"


def test_fixing_twice_changes_nothing_the_second_time(project: Path) -> None:
    invoke("fix", ".")
    identities = {path: path.stat().st_ino for path in project.glob("*.py")}
    code, _, err = invoke("fix", ".")
    assert "fixed 0 findings in 0 files" in err
    assert {path: path.stat().st_ino for path in project.glob("*.py")} == identities
    assert code == 0


FACTORY = """\
from sqlalchemy.orm import sessionmaker

SessionLocal = sessionmaker()


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
CALLERS = """\
from factory import open_pair, open_session


def guarded(ready):
    db = open_session(ready)
    if db is None:
        return
    db.commit()


def untested(use_file):
    db = open_pair(use_file)
    if db is None:
        return
    db.commit()
"""


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "from-the-cache"])
def test_what_a_factory_of_another_module_may_return_decides_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    """The shapes a project function returns besides the resource travel in
    its module's summary (and the cache): a test of `None` is enough after
    one factory, not after the one that may return a tuple."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "factory.py").write_text(FACTORY)
    (tmp_path / "callers.py").write_text(CALLERS)
    caching = [] if cached else ["--no-cache"]
    if cached:
        # Summaries written by a first run, read back by the fix.
        assert CliRunner().invoke(cli, ["check", "."]).exit_code == 1
    result = CliRunner().invoke(cli, ["fix", "--unsafe-fixes", *caching, "."])
    fixed = read(tmp_path / "callers.py")
    assert "    try:\n        db.commit()\n    finally:\n        db.close()\n" in fixed
    assert fixed.count("db.close()") == 1
    # Where it is after the rewrite above it.
    assert (
        "callers.py:15:10: SG102 not fixable: `open_pair()` may return a tuple instead, "
        "and `db is None` does not rule that out"
    ) in result.stderr


MODELS = """\
from sqlalchemy import Column, Integer
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()


class Order(Base):
    __tablename__ = "orders"
    id = Column(Integer, primary_key=True)
    total = Column(Integer)
    lines = relationship("Line")
"""
VIEWS = """\
from sqlalchemy.orm import sessionmaker

from models import Order

SessionLocal = sessionmaker()


def totals():
    db = SessionLocal()
    return [order.total for order in db.query(Order)]


def lines():
    db = SessionLocal()
    return [order.lines for order in db.query(Order)]
"""


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "from-the-cache"])
def test_columns_of_a_model_in_another_module_are_plain_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    """A module that only declares mapped classes is read for its columns
    (the prefilter lets it through; its summary names them): the values of
    columns may be returned from a block that closes the session, the
    objects of a relationship may not."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "views.py").write_text(VIEWS)
    caching = [] if cached else ["--no-cache"]
    if cached:
        assert CliRunner().invoke(cli, ["check", "."]).exit_code == 1
    result = CliRunner().invoke(cli, ["fix", "--unsafe-fixes", *caching, "."])
    fixed = read(tmp_path / "views.py")
    assert "        return [order.total for order in db.query(Order)]\n" in fixed
    assert "    db = SessionLocal()\n    return [order.lines for order in" in fixed
    assert (
        "SG102 not fixable: a value loaded through `db` is returned by "
        "`return [order.lines for order in db.query(Order)]`"
    ) in result.stderr

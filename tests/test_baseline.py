"""Baselines (SPEC section 6): fingerprints that survive unrelated edits, new
findings reported, stale entries counted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from slotguard.config import Config
from slotguard.diagnostic import Diagnostic
from slotguard.engine import check_bytes
from slotguard.report.baseline import (
    Baseline,
    BaselineError,
    Filtered,
    dumps_baseline,
    fingerprint,
    normalise_path,
    normalise_source,
    write_baseline,
)
from slotguard.settings import Settings

PATH = "app/orders.py"
LEAKY = """\
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
EDITED = '''\
"""Orders, now with logging and a repository class."""
import logging

import asyncpg

log = logging.getLogger(__name__)


class Repository:
    async def load(self, pool: asyncpg.Pool, key):
        conn=await pool.acquire()  # legacy: see issue #12
        if key is None:
            return None
        try:
            return await conn.fetchrow("select $1", key)
        finally:
            await pool.release(conn)
'''
SECOND_LEAK = """

async def load_again(pool: asyncpg.Pool, key):
    conn = await pool.acquire()
    if key is None:
        return None
    try:
        return await conn.fetchrow("select $1", key)
    finally:
        await pool.release(conn)
"""
FIXED = """\
import asyncpg


async def load(pool: asyncpg.Pool, key):
    async with pool.acquire() as conn:
        return await conn.fetchrow("select $1", key)
"""


class Tree:
    """Files by path, the way the formatters and the baseline read them."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def sources(self, path: str) -> Sequence[str] | None:
        text = self.files.get(path)
        return text.splitlines() if text is not None else None

    def check(self) -> list[Diagnostic]:
        settings = Settings.from_config(Config(), use_cache=False)
        found = []
        for path, text in sorted(self.files.items()):
            found += check_bytes(text.encode(), Path(path), settings, path).diagnostics
        return found

    def baseline(self) -> Baseline:
        return Baseline.loads(dumps_baseline(self.check(), self.sources))

    def against(self, baseline: Baseline, checked: Sequence[str] | None = None) -> Filtered:
        return baseline.filter(self.check(), self.sources, checked=checked)


def orders(text: str) -> Tree:
    return Tree({PATH: text})


def test_the_file_lists_fingerprints_one_per_line_in_a_stable_order() -> None:
    tree = orders(LEAKY)
    diagnostics = tree.check()
    text = dumps_baseline(diagnostics, tree.sources)
    assert text == (
        "{\n"
        '  "version": 1,\n'
        '  "findings": [\n'
        '    {"path": "app/orders.py", "code": "SG201", '
        '"source": "conn = await pool.acquire()", "occurrence": 0}\n'
        "  ]\n"
        "}\n"
    )
    assert dumps_baseline(reversed(diagnostics), tree.sources) == text
    assert json.loads(text)["version"] == 1
    assert dumps_baseline([], tree.sources) == '{\n  "version": 1,\n  "findings": []\n}\n'


def test_edits_above_moves_and_reformatting_do_not_resurrect_findings() -> None:
    baseline = orders(LEAKY).baseline()
    edited = orders(EDITED)
    assert {(d.code, d.line) for d in edited.check()} == {("SG201", 11)}
    assert edited.against(baseline) == Filtered((), baselined=1, stale=0)


def test_a_second_identical_leak_in_the_same_file_is_new() -> None:
    baseline = orders(LEAKY).baseline()
    result = orders(LEAKY + SECOND_LEAK).against(baseline)
    assert sorted((d.code, d.line) for d in result.diagnostics) == [("SG201", 15)]
    assert (result.baselined, result.stale) == (1, 0)


def test_a_new_leak_of_the_same_code_on_another_line_is_reported() -> None:
    baseline = orders(LEAKY).baseline()
    other = SECOND_LEAK.replace("conn", "connection")
    result = orders(LEAKY + other).against(baseline)
    assert sorted((d.code, d.line) for d in result.diagnostics) == [("SG201", 15)]


def test_fixed_findings_are_stale_only_in_files_that_were_checked_and_analysed() -> None:
    baseline = Tree({PATH: LEAKY, "app/more.py": LEAKY}).baseline()
    assert len(baseline) == 2
    fixed = Tree({PATH: FIXED, "app/more.py": LEAKY})
    assert fixed.against(baseline) == Filtered((), baselined=1, stale=1)
    only_orders = orders(FIXED)
    assert only_orders.against(baseline, checked=["./app/orders.py"]).stale == 1
    assert only_orders.against(baseline, checked=["app/other.py"]).stale == 0
    broken = Tree({PATH: "import asyncpg\ndef load(:\n", "app/more.py": LEAKY})
    result = broken.against(baseline)
    assert [d.code for d in result.diagnostics] == ["SG000"]
    assert result.stale == 0


def test_occurrences_count_identical_lines_in_file_order() -> None:
    tree = orders(LEAKY + SECOND_LEAK)
    prints = [(d.line, p.code, p.occurrence) for d, p in fingerprint(tree.check(), tree.sources)]
    assert sorted(prints) == [(5, "SG201", 0), (15, "SG201", 1)]


@pytest.mark.parametrize(
    ("line", "normalised"),
    [
        ("    conn = await pool.acquire()\n", "conn = await pool.acquire()"),
        ("\tconn  =  await pool.acquire()   # noqa: E501", "conn = await pool.acquire()"),
        ('x = "a # b"  # c', 'x = "a # b"'),
        ("x = 'it''s' + '#' # c", "x = 'it''s' + '#'"),
        ('x = """# not a comment""" # c', 'x = """# not a comment"""'),
        (r'x = "a \" # b" # c', r'x = "a \" # b"'),
        ("# only a comment", ""),
    ],
)
def test_source_normalisation(line: str, normalised: str) -> None:
    assert normalise_source(line) == normalised


def test_path_normalisation() -> None:
    assert normalise_path("./app/orders.py") == "app/orders.py"
    assert normalise_path("app\\orders.py") == "app/orders.py"
    assert normalise_path("app/sub/../orders.py") == "app/orders.py"


def test_write_and_load(tmp_path: Path) -> None:
    tree = orders(LEAKY)
    file = tmp_path / "slotguard-baseline.json"
    assert write_baseline(file, tree.check(), tree.sources) == 1
    assert file.read_bytes() == dumps_baseline(tree.check(), tree.sources).encode()
    assert tree.against(Baseline.load(file)) == Filtered((), baselined=1, stale=0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "is not valid JSON"),
        ("[]", "is not a slotguard baseline"),
        (
            '{"version": 2, "findings": []}',
            "has baseline version 2; this slotguard reads version 1",
        ),
        ('{"version": 1}', "has no `findings` list"),
        ('{"version": 1, "findings": [1]}', "finding 1 is not an object"),
        (
            '{"version": 1, "findings": [{"path": "a.py", "code": "SG101", "source": "x"}]}',
            "finding 1 has no valid `occurrence`",
        ),
    ],
)
def test_a_bad_baseline_says_what_is_wrong_and_what_to_do(text: str, problem: str) -> None:
    with pytest.raises(BaselineError) as error:
        Baseline.loads(text, "base.json")
    assert problem in str(error.value)
    assert str(error.value).startswith("base.json")
    assert str(error.value).endswith("write a new one with --write-baseline")


def test_a_missing_baseline_file(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match=r"cannot read baseline .*create it with --write"):
        Baseline.load(tmp_path / "missing.json")

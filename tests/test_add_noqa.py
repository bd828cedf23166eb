"""``--add-noqa`` (SPEC section 6): comments that make ``check`` report
nothing, in the right place, merged with what is there; and unused ones."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from slotguard.config import Config
from slotguard.diagnostic import Diagnostic
from slotguard.engine import check_bytes
from slotguard.report.noqa import Suppressions, add_noqa, unused_noqa, without_noqa
from slotguard.settings import Settings

PATH = "app/orders.py"
HEAD = "import asyncpg\n\n\nasync def load(pool: asyncpg.Pool, key):\n"
LEAKY = (
    HEAD
    + """\
    conn = await pool.acquire()
    if key is None:
        return None
    try:
        return await conn.fetchrow("select $1", key)
    finally:
        await pool.release(conn)
"""
)
TWO_FUNCTIONS = (
    LEAKY
    + """

async def store(pool: asyncpg.Pool, row):
    conn = await pool.acquire()
    await conn.execute("insert ...", row)
"""
)
STRING_AFTER = (
    HEAD
    + '''\
    conn = await pool.acquire(); query = """
        select 1 -- # noqa: SG101 is not a comment here
    """
    return await conn.fetchrow(query, key)
'''
)
CONTINUED = (
    HEAD
    + """\
    conn = await pool.acquire(); query = "select " + \\
        "$1"
    return await conn.fetchrow(query, key)
"""
)
CONTINUED_AFTER_STRING = (
    HEAD
    + '''\
    conn = await pool.acquire(); query = f"""
        select {key!r}
    """ \\
        + ";"
    return await conn.fetchrow(query)
'''
)


def check(text: str, select: list[str] | None = None) -> list[Diagnostic]:
    settings = Settings.from_config(Config(), select=select, use_cache=False)
    return list(check_bytes(text.encode(), Path(PATH), settings, PATH).diagnostics)


def noqa_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "noqa" in line.lower()]


@pytest.mark.parametrize(
    "text",
    [
        LEAKY,
        TWO_FUNCTIONS,
        STRING_AFTER,
        CONTINUED,
        CONTINUED_AFTER_STRING,
        LEAKY.replace("\n", "\r\n"),
        TWO_FUNCTIONS.replace("\n", "\r\n").rstrip(),
        LEAKY.replace("acquire()", "acquire()  # noqa: E501"),
        LEAKY.replace("acquire()", "acquire()  # type: ignore[misc]"),
    ],
    ids=[
        "leaky",
        "two-functions",
        "string-after",
        "continued",
        "continued-after-string",
        "crlf",
        "crlf-no-final-newline",
        "other-tool-noqa",
        "other-comment",
    ],
)
def test_add_noqa_then_check_reports_nothing(text: str) -> None:
    diagnostics = check(text)
    assert diagnostics
    added = add_noqa(text, diagnostics)
    assert check(added.text) == []
    cst.parse_module(added.text)
    assert added.unplaced == ()
    before, after = text.splitlines(), added.text.splitlines()
    assert len(after) == len(before)
    assert added.lines == sum(old != new for old, new in zip(before, after, strict=True)) > 0
    assert add_noqa(added.text, diagnostics).text == added.text


def test_codes_are_written_sorted_on_each_reported_line() -> None:
    added = add_noqa(TWO_FUNCTIONS, check(TWO_FUNCTIONS))
    assert added.lines == 2
    assert noqa_lines(added.text) == [
        "    conn = await pool.acquire()  # noqa: SG201",
        "    conn = await pool.acquire()  # noqa: SG101",
    ]


@pytest.mark.parametrize(
    ("comment", "merged"),
    [
        ("# noqa: E501", "# noqa: E501, SG201"),
        ("# noqa:E501,W291 long url", "# noqa:E501,W291, SG201 long url"),
        ("# NOQA: sg101", "# NOQA: sg101, SG201"),
        ("# noqa: SG1", "# noqa: SG1, SG201"),
        ("# type: ignore[misc]", "# type: ignore[misc]  # noqa: SG201"),
        ("# why  # noqa: E501  # and more", "# why  # noqa: E501, SG201  # and more"),
    ],
)
def test_codes_merge_into_existing_comments(comment: str, merged: str) -> None:
    text = LEAKY.replace("acquire()", f"acquire()  {comment}")
    added = add_noqa(text, check(text))
    assert noqa_lines(added.text) == [f"    conn = await pool.acquire()  {merged}"]
    assert check(added.text) == []


def test_a_bare_noqa_is_left_alone() -> None:
    diagnostics = check(LEAKY)
    text = LEAKY.replace("acquire()", "acquire()  # noqa")
    assert add_noqa(text, diagnostics).text == text
    assert add_noqa(text, diagnostics).lines == 0


def test_noqa_inside_a_string_is_not_a_comment() -> None:
    text = LEAKY.replace("acquire()", 'acquire(); note = "# noqa: SG201"')
    assert {d.code for d in check(text)} == {"SG201"}
    added = add_noqa(text, check(text))
    assert noqa_lines(added.text) == [
        '    conn = await pool.acquire(); note = "# noqa: SG201"  # noqa: SG201'
    ]


def test_a_line_ending_inside_a_string_gets_the_comment_where_the_string_ends() -> None:
    added = add_noqa(STRING_AFTER, check(STRING_AFTER))
    lines = added.text.splitlines()
    assert lines[4] == '    conn = await pool.acquire(); query = """'
    assert lines[5] == "        select 1 -- # noqa: SG101 is not a comment here"
    assert lines[6] == '    """  # noqa: SG101'
    assert check(STRING_AFTER.replace('    """\n', '    """  # noqa: SG101\n')) == []


def test_a_backslash_continuation_gets_the_comment_where_it_ends() -> None:
    added = add_noqa(CONTINUED, check(CONTINUED)).text.splitlines()
    assert added[4:6] == [
        '    conn = await pool.acquire(); query = "select " + \\',
        '        "$1"  # noqa: SG101',
    ]
    chained = add_noqa(CONTINUED_AFTER_STRING, check(CONTINUED_AFTER_STRING)).text.splitlines()
    assert chained[6:8] == ['    """ \\', '        + ";"  # noqa: SG101']


def test_crlf_line_endings_are_kept() -> None:
    text = TWO_FUNCTIONS.replace("\n", "\r\n")
    added = add_noqa(text, check(text)).text
    assert added.count("\r\n") == added.count("\n") == text.count("\n")
    assert "    conn = await pool.acquire()  # noqa: SG201\r\n" in added


def test_files_that_did_not_parse_are_left_alone() -> None:
    broken = "import asyncpg\ndef load(:\n"
    (finding,) = check(broken)
    assert finding.code == "SG000"
    assert add_noqa(broken, [finding]).text == broken
    untokenizable = LEAKY + 'x = """never closed\n'
    added = add_noqa(untokenizable, check(LEAKY))
    assert added.text == untokenizable
    assert {d.code for d in added.unplaced} == {"SG201"}


def test_suppressions_follow_strings_and_continuations() -> None:
    text = "x = f(1) + '''\n'''  # noqa: SG101\ny = 2 + \\\n  3  # noqa\n"
    suppressions = Suppressions.of(text)
    assert suppressions.suppresses("SG101", 1)
    assert suppressions.suppresses("SG101", 2)
    assert not suppressions.suppresses("SG201", 1)
    assert suppressions.suppresses("SG201", 3)
    assert not Suppressions.of("x = '# noqa'\n").suppresses("SG101", 1)
    assert Suppressions.of("\n# slotguard: noqa: SG1\n").suppresses("SG101", 9)
    assert not Suppressions.of("x = '''\n# slotguard: noqa\n'''\n").suppresses("SG101", 9)


def unused(text: str, selected: list[str] | None = None) -> list[tuple[int, tuple[str, ...]]]:
    findings = check(without_noqa(text), selected)
    codes = None if selected is None else Settings.from_config(Config(), select=selected).codes
    return [(u.line, u.codes) for u in unused_noqa(text, PATH, findings, selected=codes)]


def test_without_noqa_removes_only_noqa_comments() -> None:
    text = "# slotguard: noqa\n" + LEAKY.replace("acquire()", "acquire()  # noqa: SG101  # why")
    stripped = without_noqa(text)
    assert stripped.splitlines() == ["", *LEAKY.splitlines()]
    kept = LEAKY.replace("acquire()", "acquire()  # why")
    assert without_noqa(kept) == kept
    assert {d.code for d in check(stripped)} == {"SG201"}


def test_unused_noqa_codes_are_reported() -> None:
    line = "    conn = await pool.acquire()"
    assert unused(LEAKY.replace(line, f"{line}  # noqa: SG201, E501")) == []
    assert unused(LEAKY.replace(line, f"{line}  # noqa: SG2")) == []
    assert unused(LEAKY.replace(line, f"{line}  # noqa: SG2, SG1")) == [(5, ("SG1",))]
    assert unused(LEAKY.replace(line, f"{line}  # noqa: SG201, SG103")) == [(5, ("SG103",))]
    assert unused(LEAKY.replace("return None", "return None  # noqa: SG201")) == [(7, ("SG201",))]
    assert unused(LEAKY.replace("return None", "return None  # noqa: E501, X1")) == []
    assert unused(LEAKY.replace("return None", "return None  # noqa")) == []


def test_unused_noqa_skips_rules_that_did_not_run_but_not_unknown_codes() -> None:
    text = LEAKY.replace("return None", "return None  # noqa: SG103, SG999")
    assert unused(text) == [(7, ("SG103", "SG999"))]
    assert unused(text, selected=["SG2"]) == [(7, ("SG999",))]


def test_unused_file_level_noqa() -> None:
    text = "# slotguard: noqa: SG105, SG2\n" + LEAKY
    findings = check(without_noqa(text))
    (found,) = unused_noqa(text, PATH, findings)
    assert (found.line, found.column, found.codes, found.whole_file) == (1, 1, ("SG105",), True)
    assert found.message == (
        "unused noqa code SG105: nothing in this file is reported as SG105; remove it"
    )
    clean = "# slotguard: noqa\nx = 1\n"
    (bare,) = unused_noqa(clean, PATH, check(without_noqa(clean)))
    assert bare.codes == ()
    assert "no finding to suppress" in bare.message


def test_unused_noqa_on_a_line_the_string_or_continuation_applies_to() -> None:
    text = STRING_AFTER.replace('    """\n', '    """  # noqa: SG101, SG202\n')
    assert unused(text) == [(7, ("SG202",))]


@pytest.mark.parametrize("stale", ["SG999", "SG103"])
def test_add_noqa_with_unused_noqa_selected_then_check_reports_nothing(stale: str) -> None:
    """With SG001 selected, a stale code is reported as unused; the comment
    ``--add-noqa`` then writes suppresses that finding, and is itself used."""
    text = LEAKY.replace("return None", f"return None  # noqa: {stale}")
    diagnostics = check(text, select=["SG"])
    assert "SG001" in {d.code for d in diagnostics}
    added = add_noqa(text, diagnostics)
    assert f"# noqa: {stale}, SG001" in added.text or f"# noqa: SG001, {stale}" in added.text
    assert check(added.text, select=["SG"]) == []


def test_a_lone_sg001_that_suppresses_nothing_is_unused() -> None:
    text = LEAKY.replace("return None", "return None  # noqa: SG001")
    assert unused(text) == [(7, ("SG001",))]
    line = "    conn = await pool.acquire()"
    assert unused(LEAKY.replace(line, f"{line}  # noqa: SG")) == []

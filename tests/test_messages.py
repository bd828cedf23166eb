"""How code is quoted in messages (``slotguard.rules.common.code``)."""

from __future__ import annotations

import libcst as cst
import pytest

from slotguard.rules.common import code


@pytest.mark.parametrize(
    ("source", "quoted"),
    [
        ("pool.getconn(  # a comment\n    timeout=1.0\n)", "pool.getconn(timeout=1.0)"),
        ("create_pool(\n    DSN,  # primary\n    max_size=5,\n)", "create_pool(DSN, max_size=5,)"),
        ("f(x)  ", "f(x)"),
        ("execute(\n    '# not a comment'\n)", "execute('# not a comment')"),
        ("execute('( kept )')", "execute('( kept )')"),
    ],
)
def test_code_is_one_line_without_comments(source: str, quoted: str) -> None:
    assert code(cst.parse_expression(source)) == quoted


def test_long_code_is_shortened() -> None:
    quoted = code(cst.parse_expression("f(" + ", ".join(["argument"] * 20) + ")"))
    assert len(quoted) == 60 and quoted.endswith("...")


def test_matching_a_case_is_not_a_raise_point() -> None:
    """Matching compares and checks types: a leak through a ``case`` would be
    one nobody fixes, so only the early ``return`` is reported."""
    from pathlib import Path

    from slotguard.config import Config
    from slotguard.engine import check_bytes
    from slotguard.settings import Settings

    source = (
        "import asyncpg\n\n\n"
        "async def f(pool: asyncpg.Pool, command):\n"
        "    conn = await pool.acquire()\n"
        "    match command:\n"
        '        case "stop":\n'
        "            return None\n"
        "    try:\n"
        '        await conn.execute("select 1")\n'
        "    finally:\n"
        "        await pool.release(conn)\n"
    )
    settings = Settings.from_config(Config(), select=["SG2"], use_cache=False)
    (finding,) = check_bytes(source.encode(), Path("m.py"), settings, "m.py").diagnostics
    assert finding.code == "SG201"
    assert finding.message.endswith("when returning at line 8")
    assert [related.message for related in finding.related] == [
        "acquired here; use `async with pool.acquire() as conn`",
        "leaves without releasing it",
    ]

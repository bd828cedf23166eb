"""Bad input gets SG000 with a reason, never a traceback, and the rest of the
run goes on (SPEC section 2, SG000)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import generate_sg000_fixtures
import pytest

from slotguard.parse import parse
from slotguard.source import SourceError, decode

SLOTGUARD = Path(sys.executable).with_name("slotguard")
LEAK = """\
import asyncpg


async def f(pool: asyncpg.Pool):
    conn = await pool.acquire()
    return conn.fetch("x")
"""


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SLOTGUARD), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_generated_fixtures_are_current() -> None:
    for name, data in generate_sg000_fixtures.contents().items():
        path = generate_sg000_fixtures.DIRECTORY / name
        assert path.read_bytes() == data, (
            f"{path} is stale: run python tests/generate_sg000_fixtures.py"
        )


def test_a_directory_of_bad_files(tmp_path: Path) -> None:
    """The issue's scenario: each unreadable file gets SG000 with its reason,
    the others are analysed, exit 1, no traceback."""
    sources = generate_sg000_fixtures.DIRECTORY
    for name in (
        "binary.py",
        "latin1_without_coding.py",
        "deep_brackets.py",
        "deep_operators.py",
        "empty.py",
        "syntax_error.py",
    ):
        shutil.copy(sources / name, tmp_path / name)
    (tmp_path / "x.py").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00 not python")
    (tmp_path / "leak.py").write_text(LEAK)
    os.symlink(tmp_path / "missing-target.py", tmp_path / "dangling.py")
    result = run_cli("check", str(tmp_path), "--output-format", "json")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    findings = json.loads(result.stdout)
    by_file = {Path(f["path"]).name: f for f in findings if f["code"] == "SG000"}
    assert set(by_file) == {
        "binary.py",
        "x.py",
        "latin1_without_coding.py",
        "deep_brackets.py",
        "deep_operators.py",
        "syntax_error.py",
        "dangling.py",
    }
    assert "NUL byte" in by_file["x.py"]["message"]
    assert "not valid UTF-8" in by_file["latin1_without_coding.py"]["message"]
    assert "coding" in by_file["latin1_without_coding.py"]["message"]
    assert "too deep" in by_file["deep_brackets.py"]["message"]
    assert "too deep" in by_file["deep_operators.py"]["message"]
    assert "syntax error" in by_file["syntax_error.py"]["message"]
    assert by_file["syntax_error.py"]["line"] == 4
    assert "cannot be read" in by_file["dangling.py"]["message"]
    assert any(f["code"] == "SG101" and f["path"].endswith("leak.py") for f in findings)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("import asyncpg\nx = " + "[" * 300 + "]" * 300 + "\n", "too deep"),
        ("import asyncpg\nx = " + "f(" * 4000 + ")" * 4000 + "\n", "too deep"),
        ("import asyncpg\nx = " + "not " * 5000 + "1\n", "too deep"),
        ("import asyncpg\nx = " + " or ".join(["a"] * 70000) + "\n", "too deep"),
        ("import asyncpg\ndef f(:\n", "syntax error"),
    ],
    ids=["brackets", "calls", "unary", "booleans", "syntax"],
)
def test_parse_refuses_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        parse(text)


def test_chains_cpython_accepts_are_parsed() -> None:
    """The deepest expressions CPython itself accepts parse without crashing."""
    for text in (
        "x = " + "(" * 199 + "1" + ")" * 199 + "\n",
        "x = " + " and ".join(["a"] * 30000) + "\n",
        "x = a" + ".b" * 2000 + "\n",
    ):
        assert parse(text).body


def test_newer_syntax_than_the_running_python_is_still_parsed() -> None:
    """A syntax error for this interpreter may be valid for a newer one: libcst
    gets to try (in a forked child first)."""
    text = "type Rows = list[int]\n"
    assert parse(text).code == text


def test_decode_keeps_what_a_rewrite_needs() -> None:
    source = decode(b"\xef\xbb\xbfx = 1\r\ny = 2\r\n")
    assert source.bom and source.newline == "\r\n" and source.text == "x = 1\r\ny = 2\r\n"
    assert source.encode(source.text) == b"\xef\xbb\xbfx = 1\r\ny = 2\r\n"
    latin = decode("# -*- coding: latin-1 -*-\nx = 'caf\u00e9'\n".encode("latin-1"))
    assert latin.encoding == "iso-8859-1" and "caf\u00e9" in latin.text


def test_bad_coding_declaration() -> None:
    with pytest.raises(SourceError, match="encoding declaration"):
        decode(b"# -*- coding: no-such-codec -*-\nx = 1\n")


@pytest.mark.parametrize("first_lines", [b"x = 'caf\xe9'\n", b"import os\n# caf\xe9\n"])
def test_a_byte_that_is_not_utf8_in_the_first_two_lines_is_located(first_lines: bytes) -> None:
    """Python's tokenizer calls this a bad encoding declaration; the message
    says which byte, where, and how to declare the encoding."""
    with pytest.raises(SourceError, match="not valid UTF-8: byte 0xe9") as raised:
        decode(first_lines + b"x = 1\n")
    assert "coding: latin-1" in str(raised.value)
    assert raised.value.line == first_lines.count(b"\n")


def test_libcst_internal_errors_become_sg000(monkeypatch: pytest.MonkeyPatch) -> None:
    """libcst raises more than syntax errors (``CSTLogicError`` on syntax it
    does not support yet); the file gets SG000 and the run goes on."""
    import libcst as cst

    def refuse(text: str) -> cst.Module:
        raise cst.CSTLogicError("unsupported")

    monkeypatch.setattr(cst, "parse_module", refuse)
    with pytest.raises(SourceError, match="libcst cannot parse it"):
        parse("x = 1\n")

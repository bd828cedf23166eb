"""The command line as ruff users expect it, and its edges: encodings in
code frames, standard input, contradictory options, what a run says about
itself (SPEC sections 3 and 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from slotguard.cli import cli

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


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "slotguard.toml").write_text("")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "leaky.py").write_text(LEAKY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str, stdin: bytes | str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


LATIN_1 = (
    "# -*- coding: latin-1 -*-\n" + LEAKY.replace("acquire()\n", "acquire()  # café\n")
).encode("latin-1")


def test_code_frames_show_a_declared_encoding_decoded(project: Path) -> None:
    (project / "app" / "latin.py").write_bytes(LATIN_1)
    code, out, _ = invoke("check", "--no-cache", "app/latin.py")
    assert code == 1
    assert "conn = await pool.acquire()  # café" in out and "\ufffd" not in out
    code, out, _ = invoke("check", "--stdin-filename", "app/buffer.py", stdin=LATIN_1)
    assert code == 1
    assert "conn = await pool.acquire()  # café" in out and "\ufffd" not in out


def test_a_symbolic_link_loop_on_the_command_line_is_named_as_one(project: Path) -> None:
    (project / "loop_a").symlink_to("loop_b")
    (project / "loop_b").symlink_to("loop_a")
    (project / "dangling.py").symlink_to("gone.py")
    code, _, err = invoke("check", "loop_a")
    assert code == 2
    assert "loop_a: a symbolic link loop" in err and "no such file" not in err
    code, _, err = invoke("check", "dangling.py")
    assert code == 2 and "dangling.py: a symbolic link to gone.py, which does not exist" in err
    code, _, err = invoke("check", "missing.py")
    assert code == 2 and "missing.py: no such file or directory" in err

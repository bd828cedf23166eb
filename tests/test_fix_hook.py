"""The ``slotguard-fix`` pre-commit hook, run by the real pre-commit
(``try-repo``): it rewrites the staged leak, so pre-commit fails the commit
with the file modified, and passes once the fix is in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEAKY = """\
import asyncpg


async def load(pool: asyncpg.Pool, key):
    conn = await pool.acquire()
    if key is None:
        return None
    try:
        return await conn.fetch("select $1", key)
    finally:
        await pool.release(conn)
"""
FIXED = """\
import asyncpg


async def load(pool: asyncpg.Pool, key):
    async with pool.acquire() as conn:
        if key is None:
            return None
        return await conn.fetch("select $1", key)
"""


def test_fix_hook_rewrites_the_file_then_passes(tmp_path: Path) -> None:
    repository = tmp_path / "user-project"
    repository.mkdir()
    (repository / "leaky.py").write_text(LEAKY)
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "."],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        subprocess.run(command, cwd=repository, check=True)
    environment = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    command = [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "slotguard-fix"]

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--files", "leaky.py"],
            cwd=repository,
            capture_output=True,
            text=True,
            env=environment,
            timeout=600,
        )

    first = try_repo()
    assert first.returncode == 1, first.stdout + first.stderr
    assert "files were modified by this hook" in first.stdout
    assert (repository / "leaky.py").read_text() == FIXED
    second = try_repo()
    assert second.returncode == 0, second.stdout + second.stderr

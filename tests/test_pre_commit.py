"""The pre-commit hook, run by the real pre-commit (``try-repo``): it fails on
a leaking file, passes on a clean one, and takes many files at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEAKY = """\
import asyncpg


async def load(pool: asyncpg.Pool):
    conn = await pool.acquire()
    return await conn.fetch("select 1")
"""
CLEAN = """\
import asyncpg


async def load(pool: asyncpg.Pool):
    async with pool.acquire() as conn:
        return await conn.fetch("select 1")
"""


MANY = 60


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("user-project")
    (root / "leaky.py").write_text(LEAKY)
    (root / "clean.py").write_text(CLEAN)
    (root / "other.py").write_text("x = 1\n")
    for index in range(MANY):
        module = root / "pkg" / f"module_{index}.py"
        module.parent.mkdir(exist_ok=True)
        module.write_text(CLEAN if index % 2 else "x = 1\n")
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "."],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        subprocess.run(command, cwd=root, check=True)
    return root


def try_repo(repository: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """The hook over ``files``; over the staged files when none are given."""
    environment = {**os.environ, "PRE_COMMIT_HOME": str(repository.parent / "pre-commit-home")}
    chosen = ["--files", *files] if files else []
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "slotguard", *chosen],
        cwd=repository,
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


def test_hook_fails_on_a_leak(repository: Path) -> None:
    result = try_repo(repository, "leaky.py", "other.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SG101" in result.stdout


def test_hook_takes_many_files_at_once(repository: Path) -> None:
    """As pre-commit passes every staged file: one leak among many clean
    files is found once."""
    many = [f"pkg/module_{index}.py" for index in range(MANY)]
    result = try_repo(repository, *many, "leaky.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("leaky.py:5:12: SG101") == 1
    assert "pkg/module_" not in result.stdout


def test_hook_passes_on_clean_files(repository: Path) -> None:
    result = try_repo(repository, "clean.py", "other.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hook_sees_the_whole_project_when_one_file_is_staged(tmp_path: Path) -> None:
    """The demo's route takes a connection from a pool another module puts on
    ``app.state``, a module the route does not import: with only the route
    staged, pre-commit names only it, and the leak is still found."""
    root = tmp_path / "demo"
    shutil.copytree(ROOT / "fixtures" / "demo", root)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for command in (["git", "init", "-q"], ["git", "add", "."], [*git, "commit", "-qm", "init"]):
        subprocess.run(command, cwd=root, check=True)
    route = root / "app" / "routes" / "orders.py"
    route.write_text(route.read_text() + "\n# a staged change\n")
    subprocess.run(["git", "add", "app/routes/orders.py"], cwd=root, check=True)
    result = try_repo(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "app/routes/orders.py:73:12: SG101" in result.stdout
    assert "app/main.py" not in result.stdout, "only the staged file is reported"

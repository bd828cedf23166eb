"""Which files a run looks at (issue: files walked, default excludes,
.gitignore, explicitly named files always checked)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from slotguard.cli import cli
from slotguard.files import DEFAULT_EXCLUDES, discover


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")


def found(
    root: Path,
    *paths: Path,
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES,
    respect_gitignore: bool = True,
) -> list[str]:
    files, _ = discover(
        paths or (root,), root=root, exclude=exclude, respect_gitignore=respect_gitignore
    )
    return sorted(Path(p).resolve().relative_to(root.resolve()).as_posix() for p in files)


def test_walks_python_files_and_skips_default_excludes(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "app/a.py",
        "app/b.txt",
        "app/sub/c.py",
        ".venv/lib/d.py",
        "venv/e.py",
        "build/f.py",
        "dist/g.py",
        ".tox/h.py",
        "node_modules/i.py",
        "x/site-packages/j.py",
        "app/__pycache__/k.py",
        ".git/l.py",
    )
    assert found(tmp_path) == ["app/a.py", "app/sub/c.py"]


def test_gitignore_is_respected_from_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("generated/\n*_pb2.py\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".gitignore").write_text("local.py\n")
    touch(tmp_path, "app/a.py", "app/local.py", "app/api_pb2.py", "generated/x.py")
    assert found(tmp_path) == ["app/a.py"]
    assert found(tmp_path, respect_gitignore=False) == [
        "app/a.py",
        "app/api_pb2.py",
        "app/local.py",
        "generated/x.py",
    ]


def test_exclude_patterns(tmp_path: Path) -> None:
    touch(tmp_path, "app/a.py", "app/migrations/0001.py", "scripts/run.py", "build/x.py")
    assert found(tmp_path, exclude=("migrations", "scripts/*.py")) == ["app/a.py", "build/x.py"]


def test_named_files_are_always_checked(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("ignored.py\n")
    touch(tmp_path, "ignored.py", "build/named.py")
    named = [tmp_path / "ignored.py", tmp_path / "build" / "named.py"]
    assert found(tmp_path, *named) == ["build/named.py", "ignored.py"]


def test_missing_paths_are_reported(tmp_path: Path) -> None:
    _, problems = discover([tmp_path / "nope"], root=tmp_path, exclude=())
    assert [p.reason for p in problems] == ["no such file or directory"]


def test_special_files_and_symlink_loops(tmp_path: Path) -> None:
    """A FIFO named like a module would block the read; a link to an ancestor
    would be walked forever (or until the path is too long)."""
    touch(tmp_path, "pkg/a.py")
    os.mkfifo(tmp_path / "pkg" / "pipe.py")
    (tmp_path / "pkg" / "again").symlink_to(tmp_path / "pkg", target_is_directory=True)
    (tmp_path / "pkg" / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    files, problems = discover([tmp_path], root=tmp_path, exclude=())
    names = sorted(path.relative_to(tmp_path).as_posix() for path in files)
    assert names == ["pkg/a.py", "pkg/dangling.py"]
    assert problems == []


def test_a_directory_that_cannot_be_listed_is_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Running as root, permissions do not bite: make listing fail instead."""
    touch(tmp_path, "pkg/a.py", "locked/b.py")
    (tmp_path / "pyproject.toml").write_text("[tool.slotguard]\n")
    locked = tmp_path / "locked"
    listing = os.scandir

    def scandir(path: str | os.PathLike[str]) -> Iterator[os.DirEntry[str]]:
        if Path(path) == Path("locked"):
            raise PermissionError(13, "Permission denied")
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.chdir(tmp_path)
    assert locked.is_dir()
    result = CliRunner().invoke(cli, ["check", ".", "--no-cache", "--output-format", "concise"])
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(
        "locked:1:1: SG000 directory not analysed: it cannot be listed (Permission denied)"
    )

"""Which files a run looks at: walking directories, excludes and ``.gitignore``.

Directories are walked for ``*.py``; excluded and git-ignored directories are
not entered. A file named explicitly on the command line is always checked.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec

DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    "build",
    "dist",
    ".tox",
    ".nox",
    ".eggs",
    "node_modules",
    "site-packages",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".slotguard_cache",
)


def _is_bare_name(pattern: str) -> bool:
    name = pattern.rstrip("/")
    return bool(name) and not any(char in name for char in "/*?[]!\\")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A path that could not be listed or does not exist."""

    path: Path
    reason: str


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    # Imported when a pattern needs it: a run over named files needs none.
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


class _Ignores:
    """Exclude patterns (relative to the configuration root) and the
    ``.gitignore`` files met on the way down."""

    def __init__(self, root: Path, patterns: Iterable[str], respect_gitignore: bool) -> None:
        self.root = root
        patterns = list(patterns)
        self._gitignores: dict[Path, pathspec.GitIgnoreSpec | None] = {}
        self._chains: dict[Path, list[Path]] = {}
        # Bare names (``build``) are the common case and need no glob matching.
        self.names = frozenset(p.rstrip("/") for p in patterns if _is_bare_name(p))
        globs = [p for p in patterns if not _is_bare_name(p)]
        self.spec = _spec(globs) if globs else None
        self.respect_gitignore = respect_gitignore

    def excluded(self, path: Path | str, is_dir: bool) -> bool:
        """Whether an absolute path is excluded (a string costs least: most
        paths are judged by their name alone)."""
        if os.path.basename(path) in self.names:
            return True
        if self.spec is None and not self.respect_gitignore:
            return False
        path = Path(path)
        if self.spec is not None and self._matches(self.spec, self.root, path, is_dir):
            return True
        if self.respect_gitignore:
            for directory in self._ancestors(path):
                spec = self._gitignore(directory)
                if spec is not None and self._matches(spec, directory, path, is_dir):
                    return True
        return False

    @staticmethod
    def _matches(spec: pathspec.GitIgnoreSpec, base: Path, path: Path, is_dir: bool) -> bool:
        try:
            relative = path.relative_to(base).as_posix()
        except ValueError:
            relative = path.name
        if is_dir:
            relative += "/"
        return spec.match_file(relative)

    def _ancestors(self, path: Path) -> list[Path]:
        """Directories from the repository root down to ``path``'s parent
        (the same for every file of a directory: looked up once)."""
        found = self._chains.get(path.parent)
        if found is None:
            chain = []
            for directory in path.parents:
                chain.append(directory)
                if (directory / ".git").exists():
                    break
            found = self._chains[path.parent] = chain[::-1]
        return found

    def _gitignore(self, directory: Path) -> pathspec.GitIgnoreSpec | None:
        if directory not in self._gitignores:
            spec = None
            try:
                lines = (directory / ".gitignore").read_text(encoding="utf-8").splitlines()
                spec = _spec(lines)
            except (OSError, UnicodeDecodeError):
                spec = None
            self._gitignores[directory] = spec
        return self._gitignores[directory]


def discover(
    paths: Iterable[Path],
    *,
    root: Path,
    exclude: Iterable[str],
    respect_gitignore: bool = True,
) -> tuple[list[Path], list[Unreadable]]:
    """The Python files under ``paths`` (sorted, no duplicates) and the paths
    that could not be read."""
    ignores = _Ignores(root.resolve(), exclude, respect_gitignore)
    found: dict[Path, None] = {}
    problems: list[Unreadable] = []
    for given in paths:
        absolute = Path(os.path.abspath(given))
        if absolute.is_file():
            found[given] = None
        elif absolute.is_dir():
            for path in _walk(given, ignores, problems):
                found[path] = None
        elif not absolute.exists():
            problems.append(Unreadable(given, _why_missing(absolute)))
        else:
            problems.append(Unreadable(given, "not a regular file or directory"))
    return sorted(found, key=lambda p: p.as_posix()), problems


def _why_missing(path: Path) -> str:
    """Why a path that does not resolve to anything does not."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return (
                "a symbolic link loop" if path.is_symlink() else "a symbolic link loop in its path"
            )
        if path.is_symlink():
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        if error.errno == errno.ENOENT:
            return "no such file or directory"
        return error.strerror or str(error)
    return "no such file or directory"


def _walk(top: Path, ignores: _Ignores, problems: list[Unreadable]) -> Iterator[Path]:
    """Python files under ``top``. Each directory is entered once, however
    many symbolic links lead to it (a link to an ancestor would loop), and
    only regular files are yielded: reading a FIFO named ``x.py`` would block
    the run. A dangling link is yielded, so that it is reported as unreadable.
    Paths are strings until a file is yielded: a tree has many entries."""
    top_text = os.fspath(top)
    stack = [top_text]
    entered: set[tuple[int, int]] = set()
    while stack:
        directory = stack.pop()
        try:
            status = os.stat(directory)
            if (status.st_dev, status.st_ino) in entered:
                continue
            entered.add((status.st_dev, status.st_ino))
            entries = list(os.scandir(directory))
        except OSError as error:
            problems.append(Unreadable(Path(directory), error.strerror or str(error)))
            continue
        subdirectories = []
        absolute_directory = os.path.abspath(directory)
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()
                # Most entries of a tree are data files: look no further.
                if not is_dir and not name.endswith(".py"):
                    continue
                regular = not is_dir and entry.is_file()
                dangling = not is_dir and entry.is_symlink() and not os.path.exists(entry.path)
            except OSError:
                continue
            absolute = os.path.join(absolute_directory, name)
            if is_dir:
                if not ignores.excluded(absolute, True):
                    subdirectories.append(os.path.join(directory, name))
            elif (regular or dangling) and not ignores.excluded(absolute, False):
                yield Path(os.path.join(directory, name))
        # Which of two links to one directory is entered must not depend on
        # the order the file system lists them in; the files are sorted at the end.
        stack.extend(sorted(subdirectories, reverse=True))

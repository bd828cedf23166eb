"""Which versions of a library a project may run, from what it declares.

Some context-manager forms exist only in recent releases: a SQLAlchemy
``Session`` is a context manager from 1.4 on, the pool proxy that
``engine.raw_connection()`` returns from 2.0.47 on. A fix writes such a form
only when every version the project may run has it, and otherwise the form
that works in all of them (``contextlib.closing(...)``, which calls the same
``close()``).

What a project may run is what it declares, read from the files nearest to
the fixed file (its directory, then each parent up to the repository root,
the first directory that names the library deciding):

- ``pyproject.toml``: ``[project]`` dependencies and optional dependencies,
  ``[dependency-groups]``, Poetry's dependencies and groups;
- ``requirements*.txt`` and ``requirements/*.txt`` (pip-tools output
  included), following ``-r`` includes;
- ``setup.cfg``: ``[options] install_requires``;
- lock files: ``poetry.lock``, ``uv.lock``, ``pdm.lock``, ``Pipfile.lock``.

Each declaration allows versions from its lower bound on (``>=2.0``,
``==2.0.8``, ``~=1.4``, Poetry's ``^2``, a locked version); a project may run
the lowest of them. A declaration without a lower bound, or a library not
declared at all, allows anything slotguard supports: from
``OLDEST_SUPPORTED``.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

Version = tuple[int, ...]

OLDEST_SUPPORTED: dict[str, str] = {"sqlalchemy": "1.3"}
"""The oldest release of each library whose API the catalogue describes
(``Session``, ``sessionmaker``, ``engine.connect()``, ``raw_connection()``):
what a project that does not say may be running."""

IMPLIED: dict[str, tuple[tuple[str, str], ...]] = {
    "sqlalchemy": (("sqlmodel", "1.4"), ("advanced-alchemy", "2.0")),
}
"""Libraries whose every release requires at least this version of another:
a project that declares SQLModel runs SQLAlchemy 1.4 or later."""

_LOCK_FILES = ("poetry.lock", "uv.lock", "pdm.lock")
_RELEASE = re.compile(r"(\d+(?:\.\d+)*)(\.\*)?\s*(a|b|rc|alpha|beta|c|dev|pre)?", re.I)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_SPECIFIER = re.compile(r"(===|==|~=|>=|<=|!=|>|<|\^|~)?\s*([^\s,;]+)")


def parse_version(text: str) -> Version | None:
    """``2.0.47`` → (2, 0, 47, 0, 1); a pre-release sorts before its final
    release (``2.1.0b2`` → (2, 1, 0, 0, 0)); None for what is no version."""
    match = _RELEASE.match(text.strip().lstrip("vV"))
    if match is None:
        return None
    release = [int(part) for part in match.group(1).split(".")][:4]
    release += [0] * (4 - len(release))
    final = 0 if match.group(3) else 1
    return (*release, final)


@dataclass(frozen=True, slots=True)
class Declared:
    """What the nearest declarations allow of one library."""

    lowest: Version | None
    """The lowest version a project may run; None: no lower bound."""
    source: Path | None
    """The directory whose files decided; None when nothing declares it."""


def declared(path: Path, distribution: str) -> Declared:
    """What the declarations nearest to ``path`` (a file) allow of a library."""
    wanted = normalise(distribution)
    for directory in _directories(path):
        found = _declarations(directory)
        if wanted in found:
            return Declared(_lowest(found[wanted]), directory)
        for implying, floor in IMPLIED.get(wanted, ()):
            if implying in found:
                return Declared(parse_version(floor), directory)
    return Declared(None, None)


def every_version_has(path: Path, requirement: str) -> bool:
    """Whether every version of a library that the project of ``path`` may
    run satisfies ``requirement`` (``sqlalchemy>=1.4``)."""
    name, _, minimum = requirement.partition(">=")
    needed = parse_version(minimum)
    if needed is None:
        raise ValueError(f"not a `library>=version` requirement: {requirement!r}")
    lowest = declared(path, name).lowest
    if lowest is None:
        floor = OLDEST_SUPPORTED.get(normalise(name))
        lowest = parse_version(floor) if floor is not None else None
    return lowest is not None and lowest >= needed


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _directories(path: Path) -> Iterator[Path]:
    """The file's directory and its parents, up to the repository's root."""
    directory = Path(os.path.abspath(path)).parent
    while True:
        yield directory
        if (directory / ".git").exists() or directory.parent == directory:
            return
        directory = directory.parent


def _lowest(bounds: list[Version | None]) -> Version | None:
    if any(bound is None for bound in bounds):
        return None
    return min(bound for bound in bounds if bound is not None)


def _declarations(directory: Path) -> dict[str, list[Version | None]]:
    """Library → the lower bound of each of its declarations in a directory
    (cached while none of the files changes)."""
    files = [
        directory / "pyproject.toml",
        directory / "setup.cfg",
        directory / "Pipfile.lock",
        *(directory / name for name in _LOCK_FILES),
        *sorted(directory.glob("requirements*.txt")),
        *sorted(directory.glob("requirements/*.txt")),
    ]
    stamps = []
    for file in files:
        try:
            stamps.append((str(file), file.stat().st_mtime_ns))
        except OSError:
            continue
    return _read_declarations(tuple(stamps))


@lru_cache(maxsize=256)
def _read_declarations(stamps: tuple[tuple[str, int], ...]) -> dict[str, list[Version | None]]:
    found: dict[str, list[Version | None]] = {}
    for name, _ in stamps:
        path = Path(name)
        try:
            for distribution, lowest in _read(path):
                found.setdefault(normalise(distribution), []).append(lowest)
        except (OSError, ValueError, tomllib.TOMLDecodeError, configparser.Error):
            # A file that cannot be read declares nothing we can use.
            continue
    return found


def _read(path: Path) -> Iterator[tuple[str, Version | None]]:
    name = path.name
    if name == "pyproject.toml":
        yield from _pyproject(tomllib.loads(path.read_text(encoding="utf-8")))
    elif name == "setup.cfg":
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(path.read_text(encoding="utf-8"))
        if parser.has_option("options", "install_requires"):
            lines = parser.get("options", "install_requires").splitlines()
            yield from _requirements(lines)
    elif name == "Pipfile.lock":
        data = json.loads(path.read_text(encoding="utf-8"))
        for section in ("default", "develop"):
            for distribution, entry in (data.get(section) or {}).items():
                version = entry.get("version", "") if isinstance(entry, dict) else ""
                yield distribution, _lower_bound(version)
    elif name in _LOCK_FILES:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for package in data.get("package", []):
            if isinstance(package, dict) and isinstance(package.get("name"), str):
                yield package["name"], parse_version(str(package.get("version", "")))
    else:
        yield from _requirements(_requirement_lines(path, set()))


def _pyproject(data: dict[str, Any]) -> Iterator[tuple[str, Version | None]]:
    project = data.get("project", {})
    yield from _requirements(_strings(project.get("dependencies")))
    for group in (project.get("optional-dependencies") or {}).values():
        yield from _requirements(_strings(group))
    for group in (data.get("dependency-groups") or {}).values():
        yield from _requirements(_strings(group))
    poetry = data.get("tool", {}).get("poetry", {})
    tables = [poetry.get("dependencies"), poetry.get("dev-dependencies")]
    tables += [group.get("dependencies") for group in (poetry.get("group") or {}).values()]
    for table in tables:
        for distribution, spec in (table or {}).items():
            if distribution != "python":
                yield distribution, _poetry_bound(spec)


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _poetry_bound(spec: object) -> Version | None:
    if isinstance(spec, str):
        return _lower_bound(spec, bare_is_exact=True)
    if isinstance(spec, dict):
        return _poetry_bound(spec.get("version", ""))
    if isinstance(spec, list):
        bounds = [_poetry_bound(item) for item in spec]
        return _lowest(bounds) if bounds else None
    return None


def _requirement_lines(path: Path, seen: set[Path]) -> Iterator[str]:
    """The lines of a requirements file, ``-r`` includes followed once."""
    if path in seen:
        return
    seen.add(path)
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            included = line.split(None, 1)[1].strip()
            yield from _requirement_lines(path.parent / included, seen)
        elif line and not line.startswith(("#", "-")):
            yield line


def _requirements(lines: Iterable[str]) -> Iterator[tuple[str, Version | None]]:
    for line in lines:
        requirement = line.split(";", 1)[0].strip()
        match = _NAME.match(requirement)
        if match is None or "://" in requirement or requirement.startswith((".", "/")):
            continue
        rest = match.group(3).strip()
        yield match.group(1), None if rest.startswith("@") else _lower_bound(rest)


def _lower_bound(specifiers: str, *, bare_is_exact: bool = False) -> Version | None:
    """The lowest version a specifier set allows; None if it has no lower bound."""
    bounds = []
    for part in specifiers.split(","):
        match = _SPECIFIER.match(part.strip())
        if match is None:
            continue
        operator, version = match.group(1), match.group(2)
        if operator is None and not bare_is_exact:
            continue
        if operator in ("<", "<=", "!="):
            continue
        parsed = parse_version(version)
        if parsed is not None:
            bounds.append(parsed)
    return max(bounds) if bounds else None

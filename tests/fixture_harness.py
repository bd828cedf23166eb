"""Run slotguard over fixture files whose expectations sit on the lines they
are about.

On a fixture line:

- ``# error: SG201`` (or ``SG101, SG201``): these codes are reported here;
- ``# MISSING: SG201``: a leak slotguard knowingly does not find yet; the test
  fails if it starts finding it, so the marker gets updated;
- ``# SPURIOUS: SG201``: a false alarm slotguard knowingly raises; likewise.

Any finding not expected, and any expected finding not made, fails the test.
Fixtures run with the default rules, plus the rule of the fixture's own
directory when it is opt-in (``fixtures/rules/sg503/`` adds SG503), so noise
from the other default rules shows too: what a user with the default
selection would see. A fixture directory with a ``pyproject.toml`` or
``slotguard.toml`` uses it, and a fixture that shows an opt-in rule beside
the default ones says so on a line of its own:
``# fixture: extend-select SG108``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from slotguard import config as configuration
from slotguard.diagnostic import Diagnostic
from slotguard.engine import check_paths
from slotguard.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
_MARK = re.compile(r"#\s*(error|MISSING|SPURIOUS):\s*(SG\d{3}(?:\s*,\s*SG\d{3})*)")
_EXTEND = re.compile(r"^# fixture: extend-select (SG\d{3}(?:\s*,\s*SG\d{3})*)$", re.MULTILINE)


@dataclass
class Expectations:
    reported: Counter[tuple[int, str]]
    missing: set[tuple[int, str]]


def expectations(path: Path) -> Expectations:
    reported: Counter[tuple[int, str]] = Counter()
    missing: set[tuple[int, str]] = set()
    text = path.read_bytes().decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        for kind, codes in _MARK.findall(line):
            for code in re.split(r"\s*,\s*", codes):
                if kind == "MISSING":
                    missing.add((number, code))
                else:
                    reported[(number, code)] += 1
    return Expectations(reported, missing)


def settings_for(path: Path, select: list[str] | None = None) -> Settings:
    found = configuration.discover(path.parent)
    config = configuration.load(found) if found is not None else configuration.Config()
    if found is not None and FIXTURES not in found.parents:
        config = configuration.Config()
    extend = [] if select is not None else _extended(path)
    return Settings.from_config(config, select=select, extend_select=extend, use_cache=False)


def _extended(path: Path) -> list[str]:
    """The opt-in codes a fixture runs with: its directory's rule, and those
    its ``# fixture: extend-select`` line names."""
    own = _own_code(path)
    codes = [own] if own is not None else []
    if path.suffix == ".py":
        text = path.read_bytes().decode("utf-8", errors="replace")
        for match in _EXTEND.finditer(text):
            codes += re.split(r"\s*,\s*", match.group(1))
    return codes


def _own_code(path: Path) -> str | None:
    """The code of the rule whose fixture directory ``path`` is in."""
    rules = FIXTURES / "rules"
    for parent in path.parents:
        if parent.parent == rules:
            return parent.name.upper()
    return None


def fixture_project(path: Path) -> tuple[Path, list[Path]]:
    """The project a fixture file belongs to, as ``slotguard check`` would
    take it, and its files: the directory of the fixture's own configuration
    file; a fixture without one is a project by itself (the repository
    around it is not its project)."""
    found = configuration.discover(path.parent)
    if found is not None and FIXTURES in found.parents:
        return found.parent, sorted(found.parent.rglob("*.py"))
    return path.parent, [path]


def run(path: Path, select: list[str] | None = None) -> list[Diagnostic]:
    """Check one fixture as a pre-commit run would: the file named alone,
    with the rest of its project read for what it tells the file."""
    settings = settings_for(path, select)
    root, project = fixture_project(path)
    return check_paths([path], settings, {}, project=project, root=root).diagnostics


@cache
def run_project(directory: Path, select: tuple[str, ...]) -> dict[Path, list[Diagnostic]]:
    """Check a whole directory as one run, as ``slotguard check <dir>`` does."""
    files = sorted(directory.rglob("*.py"))
    settings = settings_for(files[0], list(select))
    shown = {path: path.as_posix() for path in files}
    result = check_paths(files, settings, shown, root=directory)
    found: dict[Path, list[Diagnostic]] = {path: [] for path in files}
    for diagnostic in result.diagnostics:
        found[Path(diagnostic.path)].append(diagnostic)
    return found


def compare(path: Path, diagnostics: list[Diagnostic]) -> list[str]:
    """Problems with the findings, as lines for an assertion message."""
    expected = expectations(path)
    found = Counter((d.line, d.code) for d in diagnostics)
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    messages = {(d.line, d.code): d.message for d in diagnostics}
    problems = []
    for key in sorted(set(expected.reported) | set(found)):
        line, code = key
        want, got = expected.reported[key], found[key]
        source = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        if got > want:
            problems.append(f"extra   {code} at line {line}: {messages[key]}\n      | {source}")
        elif got < want:
            problems.append(f"missing {code} at line {line}\n      | {source}")
    for line, code in sorted(expected.missing):
        if found[(line, code)]:
            problems.append(f"{code} at line {line} is marked MISSING but is now reported")
    return problems


def fixture_files(directory: str) -> list[Path]:
    return sorted((FIXTURES / directory).rglob("*.py"))

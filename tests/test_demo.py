"""The quick-start demo, ``fixtures/demo``: an application with a leak of every
rule family, marked on the lines where slotguard should report them.

The demo runs as ``slotguard check fixtures/demo`` does: as one project, so
that a module sees what the modules it imports define, with the default
rules. Only the codes of rules that exist so far are checked: a mark for a
rule still to be written waits for it, so this test gets stricter as rule
families land.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fixture_harness import FIXTURES, expectations, fixture_files, run_project

from slotguard.rules import all_rules

DEMO = FIXTURES / "demo"
DEMO_FILES = fixture_files("demo")

SPEC_SECTION_2_CODES = (
    "SG101",
    "SG102",
    "SG103",
    "SG104",
    "SG105",
    "SG106",
    "SG107",
    "SG201",
    "SG202",
    "SG203",
    "SG301",
    "SG302",
    "SG303",
    "SG401",
    "SG402",
    "SG403",
    "SG501",
    "SG502",
)
"""Every rule of SPEC section 2 from SG101 to SG502: the demo has a leak of
each. SG503 and SG504 are opt-in and left out, as the quick start runs
without configuration."""


def default_codes() -> list[str]:
    return [rule.code for rule in all_rules() if rule.default]


def problems(path: Path) -> list[str]:
    """Differences between the marks and the findings, for the codes of the
    default rules that exist."""
    checked = set(default_codes())
    expected = expectations(path)
    wanted = Counter({key: n for key, n in expected.reported.items() if key[1] in checked})
    known_missing = {key for key in expected.missing if key[1] in checked}
    diagnostics = run_project(DEMO, tuple(sorted(checked)))[path]
    found = Counter((d.line, d.code) for d in diagnostics)
    messages = {(d.line, d.code): d.message for d in diagnostics}
    lines = path.read_text(encoding="utf-8").splitlines()
    result = []
    for key in sorted(set(wanted) | set(found)):
        line, code = key
        source = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        if found[key] > wanted[key]:
            result.append(f"extra   {code} at line {line}: {messages[key]}\n      | {source}")
        elif found[key] < wanted[key]:
            result.append(f"missing {code} at line {line}\n      | {source}")
    for line, code in sorted(known_missing):
        if found[(line, code)]:
            result.append(f"{code} at line {line} is marked MISSING but is now reported")
    return result


@pytest.mark.parametrize(
    "path", DEMO_FILES, ids=[p.relative_to(DEMO).as_posix() for p in DEMO_FILES]
)
def test_demo_findings_are_exactly_the_marked_ones(path: Path) -> None:
    found = problems(path)
    assert not found, "\n".join(found)


def test_demo_marks_cover_every_rule_family() -> None:
    marked: set[str] = set()
    for path in DEMO_FILES:
        expected = expectations(path)
        marked.update(code for _, code in expected.reported)
    uncovered = [code for code in SPEC_SECTION_2_CODES if code not in marked]
    assert not uncovered, f"no leak in fixtures/demo is marked with {uncovered}"

"""Every rule fixture under ``fixtures/rules``: exactly the expected findings."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixture_harness import FIXTURES, compare, fixture_files, run

RULE_FIXTURES = fixture_files("rules")


@pytest.mark.parametrize(
    "path", RULE_FIXTURES, ids=[p.relative_to(FIXTURES / "rules").as_posix() for p in RULE_FIXTURES]
)
def test_fixture(path: Path) -> None:
    problems = compare(path, run(path))
    assert not problems, "\n".join(problems)


def test_every_rule_has_fixtures() -> None:
    from slotguard.rules import all_rules

    codes_with_fixtures = {
        p.relative_to(FIXTURES / "rules").parts[0].upper() for p in RULE_FIXTURES
    }
    missing = [rule.code for rule in all_rules() if rule.code not in codes_with_fixtures]
    assert not missing, f"rules without fixtures: {missing}"

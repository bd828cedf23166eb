"""The README's promises: the two set-up commands, the rule table, and that
CI runs the README's own test command."""

from __future__ import annotations

from pathlib import Path

from slotguard.fixes import fix_summary
from slotguard.report.sarif import rule_anchor, section
from slotguard.rules import all_rules

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    return [line.strip() for line in README.splitlines() if line.startswith("    python3 -m venv")]


def test_readme_opens_with_the_two_setup_commands() -> None:
    first, second = commands()[:2]
    assert first.endswith("slotguard check fixtures/demo")
    assert second.endswith("python -m pytest") and "'.[test]'" in second
    assert README.index(first) < README.index("## ")


def test_ci_runs_the_readme_test_command() -> None:
    assert commands()[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_rule_table_matches_the_registry() -> None:
    start = README.index("<!-- rules-table")
    end = README.index("<!-- end rules-table -->")
    rows = [line for line in README[start:end].splitlines() if line.startswith("| [SG")]
    expected = [
        f"| [{rule.code}](#{rule_anchor(rule.code, rule.name)}) | {rule.name} | "
        f"{'default' if rule.default else 'opt-in'} | {rule.summary} | {fix_summary(rule.code)} |"
        for rule in all_rules()
    ]
    assert rows == expected, "README rule table is stale:\n" + "\n".join(expected)


def rule_reference() -> str:
    """The README's section per rule (what SARIF's ``helpUri`` points at):
    the first paragraph of its `What it does`, how it runs, its fix."""
    blocks = []
    for rule in all_rules():
        does = section(rule.documentation(), "What it does") or rule.summary
        runs = "Runs by default." if rule.default else "Opt-in: runs when selected."
        blocks.append(
            f"### {rule.code} {rule.name}\n\n{does.split(chr(10) * 2)[0]}\n\n"
            f"{runs} {fix_summary(rule.code)} `slotguard explain {rule.code}` prints the "
            "whole documentation.\n"
        )
    return "\n".join(blocks)


def test_each_rule_has_a_section_the_table_and_sarif_link_to() -> None:
    start = README.index("<!-- rules-reference")
    start = README.index("\n", start) + 1
    end = README.index("<!-- end rules-reference -->")
    expected = rule_reference()
    assert README[start:end].strip() == expected.strip(), "README rule reference is stale:\n" + (
        expected
    )


def test_pre_commit_hooks_run_check_and_fix_on_python_files() -> None:
    import yaml  # pre-commit's own dependency

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    by_id = {hook["id"]: hook for hook in hooks}
    assert set(by_id) == {"slotguard", "slotguard-fix"}
    assert by_id["slotguard"]["entry"] == "slotguard check"
    assert by_id["slotguard-fix"]["entry"] == "slotguard fix"
    for hook in hooks:
        assert hook["language"] == "python" and hook["types"] == ["python"]

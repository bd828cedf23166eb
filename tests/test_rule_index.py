"""The rule index read without importing the rules (``rules.rule_index``)."""

from __future__ import annotations

import ast

from slotguard import rules


def test_the_quick_reading_agrees_with_ast_for_every_rule_module() -> None:
    for module, code in rules._rule_modules():
        source = (rules._DIRECTORY / f"{module}.py").read_text(encoding="utf-8")
        quick = rules._quick_attributes(source, code)
        assert quick is not None, f"{module}: the quick reading should apply"
        full = rules._class_attributes(ast.parse(source), code)
        assert quick.get("name") == full.get("name"), module
        assert quick.get("default", True) == full.get("default", True), module


def test_the_index_matches_the_imported_rules() -> None:
    index = {(info.code, info.name, info.default) for info in rules.rule_index()}
    imported = {(rule.code, rule.name, rule.default) for rule in rules.all_rules()}
    assert index == imported


def test_an_unusual_module_falls_back_to_ast() -> None:
    source = 'class Odd:\n    code = "SG999"\n    name = "odd"\n    code = "SG998"\n'
    assert rules._quick_attributes(source, "SG999") is None
    assert rules._quick_attributes('class R:\n    code = "SG1"\n', "SG1") is None

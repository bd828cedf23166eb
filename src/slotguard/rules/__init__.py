"""The rule registry: one module per rule, named ``sgNNN_<name>.py``.

Rules are found by module name, so adding a rule is adding a file. Selecting
rules needs only their codes, names and whether they run by default; that is
read from the modules' source (``rule_index``) without importing them, so a
run served from the cache never imports libcst.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slotguard.rules.base import Context, RawFinding, Rule

__all__ = [
    "Context",
    "RawFinding",
    "Rule",
    "RuleInfo",
    "all_rules",
    "rule_by_code",
    "rule_index",
]

_MODULE_NAME = re.compile(r"^sg(\d{3})_[a-z0-9_]+$")
_DIRECTORY = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class RuleInfo:
    code: str
    name: str
    default: bool
    module: str


def _rule_modules() -> list[tuple[str, str]]:
    """(module name, code) of every rule module, by code."""
    found = []
    for info in pkgutil.iter_modules([str(_DIRECTORY)]):
        match = _MODULE_NAME.match(info.name)
        if match is not None:
            found.append((info.name, f"SG{match.group(1)}"))
    return sorted(found, key=lambda item: item[1])


@cache
def rule_index() -> tuple[RuleInfo, ...]:
    """Code, name and default of every rule, read from the source."""
    rules = []
    for module, code in _rule_modules():
        source = (_DIRECTORY / f"{module}.py").read_text(encoding="utf-8")
        attributes = _quick_attributes(source, code) or _class_attributes(ast.parse(source), code)
        rules.append(
            RuleInfo(
                code=code,
                name=str(attributes.get("name", "")),
                default=bool(attributes.get("default", True)),
                module=module,
            )
        )
    return tuple(rules)


_ATTRIBUTE = re.compile(r'^    (code|name|default) = ("[^"\n]*"|True|False)$', re.MULTILINE)


def _quick_attributes(source: str, code: str) -> dict[str, Any] | None:
    """The attributes as every rule module writes them (one class, literal
    ``code``, ``name`` and optional ``default`` lines), read with a regular
    expression: parsing twenty modules with ``ast`` costs a pre-commit run of
    one file some 60 ms. None when the source looks any different; then
    ``ast`` reads it."""
    values: dict[str, Any] = {}
    for key, value in _ATTRIBUTE.findall(source):
        if key in values:
            return None
        values[key] = value.strip('"') if value.startswith('"') else value == "True"
    if values.get("code") != code or "name" not in values:
        return None
    return values


def _class_attributes(tree: ast.Module, code: str) -> dict[str, Any]:
    """The literal class attributes of the class whose ``code`` is ``code``."""
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        values: dict[str, Any] = {}
        for statement in node.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name):
                    try:
                        values[target.id] = ast.literal_eval(statement.value)
                    except ValueError:
                        continue
        if values.get("code") == code:
            return values
    raise RuntimeError(f"rules module for {code} defines no rule class with that code")


@cache
def all_rules() -> tuple[type[Rule], ...]:
    """Every rule class, ordered by code (imports the rule modules)."""
    from slotguard.rules.base import Rule

    found: list[type[Rule]] = []
    for info in rule_index():
        module = importlib.import_module(f"{__name__}.{info.module}")
        rules = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Rule)
            and value is not Rule
            and getattr(value, "code", None) == info.code
        ]
        if len(rules) != 1:
            raise RuntimeError(f"{info.module} must define exactly one rule with code {info.code}")
        found.append(rules[0])
    return tuple(found)


def __getattr__(name: str) -> Any:
    """``Rule``, ``Context`` and ``RawFinding`` from ``rules.base``, imported on
    first use (they import libcst)."""
    if name in ("Context", "RawFinding", "Rule"):
        from slotguard.rules import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def rule_by_code(code: str) -> type[Rule] | None:
    for rule in all_rules():
        if rule.code == code.upper():
            return rule
    return None

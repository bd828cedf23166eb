"""The rule registry: one module per rule, named ``sgNNN_<name>.py``.

Rules are found by module name, so adding a rule is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache

from slotguard.rules.base import Context, RawFinding, Rule

__all__ = ["Context", "RawFinding", "Rule", "all_rules", "rule_by_code"]

_MODULE_NAME = re.compile(r"^sg(\d{3})_[a-z0-9_]+$")


@cache
def all_rules() -> tuple[type[Rule], ...]:
    """Every rule, ordered by code."""
    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE_NAME.match(info.name)
        if match is None:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        code = f"SG{match.group(1)}"
        rules = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Rule)
            and value is not Rule
            and getattr(value, "code", None) == code
        ]
        if len(rules) != 1:
            raise RuntimeError(f"{info.name} must define exactly one rule with code {code}")
        found.append(rules[0])
    found.sort(key=lambda rule: rule.code)
    return tuple(found)


def rule_by_code(code: str) -> type[Rule] | None:
    for rule in all_rules():
        if rule.code == code.upper():
            return rule
    return None

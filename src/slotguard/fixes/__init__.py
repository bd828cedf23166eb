"""Codemods that rewrite findings away: one module per fix, ``sgNNN_<what>.py``.

Each fix module defines one ``Fixer`` subclass for one rule code. The registry
is what ``slotguard rules``, ``explain``, the README's rule table and every
finding's ``fix`` field consult, so nothing claims a fix that does not exist.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slotguard.fixes.base import Fixer

_MODULE_NAME = re.compile(r"^sg(\d{3})_[a-z0-9_]+$")


@cache
def fixers() -> dict[str, Fixer]:
    """Rule code → its fixer."""
    from slotguard.fixes.base import Fixer

    found: dict[str, Fixer] = {}
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE_NAME.match(info.name)
        if match is None:
            continue
        code = f"SG{match.group(1)}"
        module = importlib.import_module(f"{__name__}.{info.name}")
        classes = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Fixer)
            and value is not Fixer
            and getattr(value, "code", None) == code
        ]
        if len(classes) != 1:
            raise RuntimeError(f"{info.name} must define exactly one fixer with code {code}")
        found[code] = classes[0]()
    return found


def fix_summary(code: str) -> str:
    """One sentence for the rule table: what ``slotguard fix`` does for a code."""
    fixer = fixers().get(code)
    if fixer is None:
        return "No automatic fix."
    summary = fixer.summary[:1].lower() + fixer.summary[1:]
    return f"{fixer.applicability.value.capitalize()} fix: {summary}"


_FIX_SAFETY = re.compile(r"^## Fix safety\s*\n+(?P<text>.+?)(?:\n\n|\Z)", re.M | re.S)


def no_fix_reason(code: str) -> str:
    """Why a finding has no fix: for a rule without a fixer, the first
    sentence of the ``## Fix safety`` section of its documentation."""
    if code in fixers():
        return "the fix does not apply to this shape of code"
    from slotguard.rules import rule_by_code

    rule = rule_by_code(code)
    match = _FIX_SAFETY.search(rule.documentation()) if rule is not None else None
    if match is None:
        return "no automatic fix"
    sentence = " ".join(match.group("text").split()).split(". ")[0].rstrip(".")
    return sentence[:1].lower() + sentence[1:]

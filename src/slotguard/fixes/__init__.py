"""Codemods that rewrite findings away: one module per fix, ``sgNNN_<what>.py``.

Each fix module defines a ``Fix`` subclass for one rule code. The registry is
what ``slotguard rules``, ``explain``, the README's rule table and the
findings' ``fix`` field consult, so nothing claims a fix that does not exist.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache

_MODULE_NAME = re.compile(r"^sg(\d{3})_[a-z0-9_]+$")


@cache
def fix_modules() -> dict[str, object]:
    """Rule code → fix module."""
    found: dict[str, object] = {}
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE_NAME.match(info.name)
        if match is not None:
            found[f"SG{match.group(1)}"] = importlib.import_module(f"{__name__}.{info.name}")
    return found


def fix_summary(code: str) -> str:
    """One sentence for the rule table: what ``slotguard fix`` does for a code."""
    module = fix_modules().get(code)
    if module is None:
        return "No automatic fix."
    summary = getattr(module, "SUMMARY", None)
    return summary if isinstance(summary, str) else "Fixable."

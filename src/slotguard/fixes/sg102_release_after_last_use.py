"""SG102: a session or engine connection never closed is entered in its
context manager up to its last use (see ``slotguard.fixes.never_released``)."""

from __future__ import annotations

from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.never_released import plan_never_released
from slotguard.rules.base import Context, RawFinding


class SessionWithoutContextManagerFix(Fixer):
    code = "SG102"
    applicability = Applicability.UNSAFE
    summary = (
        "Enter the session or connection with `with` up to its last use, when nothing "
        "uses it, or what it loaded, after."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        return plan_never_released(context, finding)

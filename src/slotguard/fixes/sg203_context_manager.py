"""SG203: the acquisition and its release become a context manager
(see ``slotguard.fixes.context_manager``)."""

from __future__ import annotations

from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.narrowed import plan_acquisition
from slotguard.rules.base import Context, RawFinding


class YieldWithoutFinallyFix(Fixer):
    code = "SG203"
    summary = (
        "Enter the resource with `with`/`async with` around the `yield` "
        "(or release it in a `finally`)."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        return plan_acquisition(context, finding)

"""SG102: the acquisition and its release become a context manager
(see ``slotguard.fixes.context_manager``)."""

from __future__ import annotations

from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.context_manager import plan_context_manager
from slotguard.rules.base import Context, RawFinding


class SessionWithoutContextManagerFix(Fixer):
    code = "SG102"
    summary = "Rewrite into `with`/`async with`."

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        return plan_context_manager(context, finding, wants_context_manager=True)

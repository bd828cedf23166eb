"""SG101: the acquisition and its release become a context manager
(see ``slotguard.fixes.context_manager``)."""

from __future__ import annotations

from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.context_manager import plan_context_manager
from slotguard.rules.base import Context, RawFinding


class AcquireWithoutContextManagerFix(Fixer):
    code = "SG101"
    summary = "Rewrite into the pool's context-manager form."

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        return plan_context_manager(context, finding, wants_context_manager=True)

"""SG202: the acquisition and its release become a context manager
(see ``slotguard.fixes.context_manager``)."""

from __future__ import annotations

from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.context_manager import plan_context_manager
from slotguard.rules.base import Context, RawFinding


class ReleaseSkippedOnExceptionFix(Fixer):
    code = "SG202"
    summary = (
        "Where acquisition and release share one block, wrap it in the context manager "
        "(or, without one, in a `try`/`finally`)."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        return plan_context_manager(context, finding)

"""SG202: the acquisition and its release become a context manager
(see ``slotguard.fixes.context_manager``)."""

from __future__ import annotations

from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.narrowed import plan_acquisition
from slotguard.rules.base import Context, RawFinding


class ReleaseSkippedOnExceptionFix(Fixer):
    code = "SG202"
    summary = (
        "Where acquisition and release share one block, wrap it in the context manager "
        "(or, without one, in a `try`/`finally`)."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        return plan_acquisition(context, finding)

"""SG108: a bare acquisition released correctly becomes the context-manager
form (see ``slotguard.fixes.context_manager``); a ``with`` that leaves its
connection to the garbage collector closes it (as SG104's fix does)."""

from __future__ import annotations

from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.narrowed import plan_acquisition
from slotguard.fixes.sg104_release_explicitly import WithDoesNotReleaseFix, is_with_item
from slotguard.rules.base import Context, RawFinding


class PreferContextManagerFix(Fixer):
    code = "SG108"
    summary = (
        "Rewrite into the context-manager form, or close the connection at the end of its `with`."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        if is_with_item(context, finding.node):
            return WithDoesNotReleaseFix().plan(context, finding)
        return plan_acquisition(context, finding, wants_context_manager=True)

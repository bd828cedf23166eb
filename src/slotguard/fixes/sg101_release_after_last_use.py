"""SG101: a pooled connection never given back is entered in its context
manager (or given back in a ``finally``) up to its last use (see
``slotguard.fixes.never_released``)."""

from __future__ import annotations

from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.never_released import plan_never_released
from slotguard.rules.base import Context, RawFinding


class AcquireWithoutContextManagerFix(Fixer):
    code = "SG101"
    applicability = Applicability.UNSAFE
    summary = (
        "Enter the connection with `async with pool.acquire()` (or give it back in a "
        "`finally`) up to its last use, when nothing uses it after."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        return plan_never_released(context, finding)

"""SG103: a direct connection never closed is entered in its context
manager (or closed in a ``finally``) up to its last use (see
``slotguard.fixes.never_released``)."""

from __future__ import annotations

from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.never_released import plan_never_released
from slotguard.rules.base import Context, RawFinding


class ConnectionWithoutCloseFix(Fixer):
    code = "SG103"
    applicability = Applicability.UNSAFE
    summary = (
        "Enter the connection with `async with` (or close it in a `finally`) up to its "
        "last use, when nothing uses it after."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        return plan_never_released(context, finding)

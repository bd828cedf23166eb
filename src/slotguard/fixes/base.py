"""What a fix is: for one rule code, a plan to rewrite the code behind a finding.

A ``Fixer`` looks at one finding in its module and either declines or returns
a ``Plan``: which statements to replace by which. Plans are computed when the
finding is reported (so every finding says whether ``slotguard fix`` can fix
it) and applied one at a time by ``slotguard.fixes.apply``, which re-checks
the result before keeping it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import libcst as cst

from slotguard.report.diagnostic import Applicability

if TYPE_CHECKING:
    from slotguard.rules.base import Context, RawFinding


@dataclass(frozen=True, slots=True)
class Plan:
    """Replace ``block``'s statements ``start`` to ``end`` (exclusive) by
    ``replacement``. ``block`` is an ``IndentedBlock`` or the ``Module``."""

    code: str
    applicability: Applicability
    description: str
    """What the rewrite does, for the finding's fix line and the summary."""
    block: cst.IndentedBlock | cst.Module
    start: int
    end: int
    replacement: Sequence[cst.BaseStatement]
    imports: Sequence[cst.SimpleStatementLine] = ()
    """Statements to add at the top of the module (after its docstring and
    ``__future__`` imports) when the rewrite needs a name it does not have."""

    def overlaps(self, other: Plan) -> bool:
        if self.block is other.block:
            return self.start < other.end and other.start < self.end
        return _contains(self, other.block) or _contains(other, self.block)


def _contains(plan: Plan, node: cst.CSTNode) -> bool:
    from slotguard.syntax import walk

    for statement in plan.block.body[plan.start : plan.end]:
        if any(sub is node for sub in walk(statement)):
            return True
    return False


class Fixer:
    """Base class of the fixes; one subclass per module in ``fixes/``."""

    code: ClassVar[str]
    applicability: ClassVar[Applicability] = Applicability.SAFE
    summary: ClassVar[str]
    """One sentence for the rule table: what the fix does."""

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Unfixable:
    """Why a finding has no fix; the ``fix`` summary shows it."""

    reason: str

"""What a fix is: for one rule code, a plan to rewrite the code behind a finding.

A ``Fixer`` looks at one finding in its module and either declines or returns
a ``Plan``: which statements to replace by which. Plans are computed when the
finding is reported (so every finding says whether ``slotguard fix`` can fix
it), which is on every ``check``: deciding is done then, but building the new
statements waits until ``slotguard.fixer`` applies the plan (and
re-checks the result before keeping it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import libcst as cst

from slotguard.diagnostic import Applicability

if TYPE_CHECKING:
    from slotguard.rules.base import Context, RawFinding


@dataclass(frozen=True, slots=True)
class Plan:
    """Replace ``block``'s statements ``start`` to ``end`` (exclusive) by
    what ``build`` returns. ``block`` is an ``IndentedBlock`` or the
    ``Module``."""

    code: str
    applicability: Applicability
    description: str
    """What the rewrite does, for the finding's fix line and the summary."""
    block: cst.IndentedBlock | cst.Module
    start: int
    end: int
    build: Callable[[], Sequence[cst.BaseStatement]]
    """The replacement statements, built when the plan is applied."""
    imports: Sequence[cst.SimpleStatementLine] = ()
    """Import lines the rewrite needs, added where the module lacks them
    (``slotguard.fixes.imports.with_imports``)."""


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

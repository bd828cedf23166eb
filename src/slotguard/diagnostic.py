"""The finding a rule reports, as plain values that outlive the syntax tree."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Applicability(str, enum.Enum):
    """How far a fix may be trusted (SPEC section 7)."""

    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True, slots=True)
class Fix:
    """That a finding can be fixed, how safely, and what the fix does."""

    applicability: Applicability
    message: str


@dataclass(frozen=True, slots=True)
class Span:
    """A source range; lines and columns are 1-based, the end is exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace the text of ``span`` by ``content`` (one piece of a fix)."""

    content: str
    span: Span


@dataclass(frozen=True, slots=True)
class Related:
    """Another place a finding points at, such as where the resource was acquired."""

    span: Span
    message: str
    path: str | None = None
    """The file the place is in, when it is not the finding's own."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding in one file."""

    code: str
    name: str
    message: str
    path: str
    span: Span
    severity: str = "error"
    fix: Fix | None = None
    related: tuple[Related, ...] = field(default=())
    no_fix_reason: str | None = None
    """Why the rule's fixer declined this finding (shown by ``slotguard fix``)."""

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.span.line, self.span.column, self.code)

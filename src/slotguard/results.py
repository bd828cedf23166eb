"""What the run keeps of one file once it is analysed: plain values, which the
results cache stores (``slotguard.cache``) and worker processes send back."""

from __future__ import annotations

from dataclasses import dataclass

from slotguard.analysis.index import ModuleSummary
from slotguard.diagnostic import Diagnostic
from slotguard.facts import Fact


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    diagnostics: tuple[Diagnostic, ...]
    analysed: bool = False
    """Whether the file passed the prefilter and its tree was analysed."""
    summary: ModuleSummary | None = None
    context_only: bool = False
    """Read for what it tells other files; its findings are not reported."""
    pending: tuple[tuple[str, Diagnostic], ...] = ()
    """Findings that stand only if no file of the run settles their key."""
    settled: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = ()
    """What rules noted for their whole-run checks."""
    suppressed: tuple[Diagnostic, ...] = ()
    """Findings a noqa comment suppressed."""

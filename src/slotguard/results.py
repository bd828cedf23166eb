"""What the run keeps of one file once it is analysed: plain values, which the
results cache stores (``slotguard.cache``) and worker processes send back."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from slotguard.analysis.index import ModuleSummary
from slotguard.diagnostic import Diagnostic
from slotguard.facts import Fact
from slotguard.view import Footprint


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    diagnostics: tuple[Diagnostic, ...]
    analysed: bool = False
    """Whether the file passed the prefilter and the screen and its tree was
    analysed."""
    summary: ModuleSummary | None = None
    pending: tuple[tuple[str, Diagnostic], ...] = ()
    """Findings that stand only if no file of the run settles their key."""
    settled: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = ()
    """What rules noted for their whole-run checks."""
    suppressed: tuple[Diagnostic, ...] = ()
    """Findings a noqa comment suppressed."""


class Verdict(str, enum.Enum):
    """How far a file went."""

    STOPPED = "stopped"
    """The prefilter stopped it: nothing in its bytes can give a name a type."""
    DEFERRED = "deferred"
    """The screen found nothing in its tree that the analysis could use: it
    is parsed with libcst only if a module that is analysed imports it."""
    CANDIDATE = "candidate"
    """The screen let it through; its analysis waits for the modules it
    imports (never cached)."""
    ANALYSED = "analysed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A file's verdict and results, with what deciding them asked of the
    project (``slotguard.view``)."""

    verdict: Verdict
    footprint: Footprint
    result: FileResult

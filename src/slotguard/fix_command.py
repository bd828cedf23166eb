"""``slotguard fix``: apply the fixes of a run, write or show them, and say
what was fixed and what was not (and why)."""

from __future__ import annotations

import difflib
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click

from slotguard.analysis.index import EMPTY_INDEX
from slotguard.diagnostic import Applicability, Diagnostic
from slotguard.engine import UNUSED_NOQA, RunResult
from slotguard.fixer import FIXED, Applied, FileFix, Unfixed, fix_source
from slotguard.fixes import fixers, no_fix_reason
from slotguard.settings import Settings
from slotguard.writes import write_atomically


def run_fixes(
    result: RunResult, settings: Settings, *, unsafe: bool, diff: bool, quiet: bool = False
) -> bool:
    """Fix the files of ``result``; returns whether any file changed (or,
    with ``diff``, would change)."""
    allowed = {Applicability.SAFE, Applicability.UNSAFE} if unsafe else {Applicability.SAFE}
    by_path: dict[str, list[Diagnostic]] = {}
    for diagnostic in result.diagnostics:
        by_path.setdefault(diagnostic.path, []).append(diagnostic)
    reported = {file.path for file in result.files}
    paths = {shown: path for shown, path in result.paths.items() if shown in reported}
    fixed: list[_Done] = []
    declined: list[_Left] = []
    changed_files = 0
    run_level = {id(diagnostic) for diagnostic in result.run_diagnostics}
    # Findings of the whole run have no plan until the file is fixed with
    # the facts of the others (``fix_source(run_facts=...)``).
    fixable_run_level = {
        id(diagnostic) for diagnostic in result.run_diagnostics if diagnostic.code in fixers()
    }
    for shown, diagnostics in sorted(by_path.items()):
        wanted = [
            d
            for d in diagnostics
            if (d.fix is not None and d.fix.applicability in allowed) or id(d) in fixable_run_level
        ]
        outcome: FileFix | None = None
        path = paths.get(shown)
        if wanted and path is not None:
            outcome = _fix_file(path, shown, result, settings, unsafe)
            if outcome.error is not None:
                click.echo(f"slotguard: {shown}: {outcome.error}", err=True)
                outcome = None
            elif outcome.changed and _deliver(path, shown, outcome, diff):
                changed_files += 1
                fixed.extend(_Done(shown, applied) for applied in outcome.applied)
        declined.extend(
            _declined(shown, diagnostics, outcome, allowed, run_level - fixable_run_level)
        )
    if not quiet:
        _summarise(fixed, changed_files, declined, diff)
    return changed_files > 0


def fix_source_text(
    data: bytes, shown: str, settings: Settings, *, unsafe: bool, diff: bool, quiet: bool
) -> tuple[bytes, bool]:
    """Fix source that is not a file (standard input): the fixed bytes, in
    the source's own encoding (the bytes given, when nothing changed), and
    whether anything changed. With ``diff``, the diff is written to
    standard output."""
    outcome = fix_source(data, Path(shown), settings, shown, unsafe=unsafe)
    if outcome.error is not None:
        click.echo(f"slotguard: {shown}: {outcome.error}", err=True)
        return data, False
    fixed = [_Done(shown, applied) for applied in outcome.applied]
    fixed_data = data
    if outcome.changed:
        assert outcome.source is not None and outcome.text is not None
        if diff:
            _deliver(Path(shown), shown, outcome, diff=True)
        fixed_data = outcome.source.encode(outcome.text)
    if not quiet:
        left = [_Left(shown, unfixed) for unfixed in outcome.declined]
        _summarise(fixed, 1 if outcome.changed else 0, left, diff)
    return fixed_data, outcome.changed


def _fix_file(
    path: Path, shown: str, result: RunResult, settings: Settings, unsafe: bool
) -> FileFix:
    try:
        data = path.read_bytes()
    except OSError as error:
        return FileFix(None, error=f"not fixed: it cannot be read: {error.strerror or error}")
    index = result.indexes.get(path, EMPTY_INDEX)
    others = [fact for file in result.files if file.path != shown for fact in file.facts]
    return fix_source(data, path, settings, shown, unsafe=unsafe, index=index, run_facts=others)


_NO_NEWLINE = "\\ No newline at end of file\n"


def _deliver(path: Path, shown: str, outcome: FileFix, diff: bool) -> bool:
    """Show or write the fixed text; whether that worked."""
    assert outcome.source is not None and outcome.text is not None
    if diff:
        old = outcome.source.text.splitlines(keepends=True)
        new = outcome.text.splitlines(keepends=True)
        for line in difflib.unified_diff(old, new, f"a/{shown}", f"b/{shown}"):
            sys.stdout.write(line if line.endswith("\n") else f"{line}\n{_NO_NEWLINE}")
        return True
    try:
        write_atomically(path, outcome.source.encode(outcome.text))
    except OSError as error:
        click.echo(f"slotguard: {shown}: not written: {error.strerror or error}", err=True)
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Done:
    """A finding fixed in the file shown as ``path``."""

    path: str
    applied: Applied

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.applied.line, self.applied.column, self.applied.code)


@dataclass(frozen=True, slots=True)
class _Left:
    """A finding left unfixed, in the file shown as ``path``."""

    path: str
    unfixed: Unfixed

    def place(self, original: bool) -> tuple[int, int]:
        """Where it is: in the text as written (the fixed text), or, where
        nothing was written (``--diff``), in the original one."""
        if original and self.unfixed.original != (0, 0):
            return self.unfixed.original
        return self.unfixed.line, self.unfixed.column

    def sort_key(self, original: bool = False) -> tuple[str, int, int, str]:
        return (self.path, *self.place(original), self.unfixed.code)


def _declined(
    shown: str,
    diagnostics: list[Diagnostic],
    outcome: FileFix | None,
    allowed: set[Applicability],
    run_level: set[int],
) -> list[_Left]:
    """Why each finding of a file that is still there was not fixed, each
    with its own reason."""

    def as_found(diagnostic: Diagnostic) -> _Left:
        reason, unsafe = _reason(diagnostic, allowed)
        if id(diagnostic) in run_level and diagnostic.fix is None and not diagnostic.no_fix_reason:
            reason = RUN_LEVEL
        unfixed = Unfixed(diagnostic.code, diagnostic.line, diagnostic.column, reason, unsafe)
        return _Left(shown, unfixed)

    if outcome is None:
        return [as_found(diagnostic) for diagnostic in diagnostics]
    # The findings left after fixing (where they are in the fixed text),
    # with the reasons found on the way; what only the whole run decides,
    # and unused noqa comments (which the rules do not report), are as the
    # run found them.
    left = [_Left(shown, unfixed) for unfixed in outcome.declined]
    left.extend(
        as_found(diagnostic)
        for diagnostic in diagnostics
        if id(diagnostic) in run_level
        or diagnostic.code in outcome.pending
        or diagnostic.code == UNUSED_NOQA[0]
    )
    return left


RUN_LEVEL = (
    "the whole run reports it (what the other files checked do decides it), "
    "and the fix rewrites one file at a time"
)
"""Why a finding of the run as a whole (a pool kept in a module global and
closed nowhere in the files checked) has no fix."""


def _reason(diagnostic: Diagnostic, allowed: set[Applicability]) -> tuple[str, bool]:
    """Why a finding of a file that was not fixed stays, and whether its fix
    waits for ``--unsafe-fixes``."""
    if diagnostic.fix is not None:
        if diagnostic.fix.applicability not in allowed:
            return diagnostic.fix.message, True
        return "the file could not be read or parsed again", False
    return diagnostic.no_fix_reason or no_fix_reason(diagnostic.code), False


def _summarise(fixed: list[_Done], files: int, declined: list[_Left], diff: bool) -> None:
    """Every finding of the run, each on its line: fixed (what the fix did),
    fixable with ``--unsafe-fixes`` (what that fix would do), or not fixable
    (why)."""
    total = len(fixed)
    verb = "would fix" if diff else "fixed"
    counts = Counter(done.applied.code for done in fixed)
    by_code = ", ".join(f"{code} ({count})" for code, count in sorted(counts.items()))
    headline = f"slotguard: {verb} {total} finding{'s' if total != 1 else ''}"
    headline += f" in {files} file{'s' if files != 1 else ''}"
    click.echo(headline + (f" ({by_code})" if by_code else ""), err=True)
    status = "would be fixed" if diff else FIXED
    for done in sorted(fixed, key=_Done.sort_key):
        applied = done.applied
        where = f"{done.path}:{applied.line}:{applied.column}" if applied.line else done.path
        click.echo(f"  {where}: {applied.code} {status}: {applied.description}", err=True)
    if declined:
        left = len(declined)
        click.echo(f"slotguard: {left} finding{'s' if left != 1 else ''} not fixed:", err=True)
        for found in sorted(declined, key=lambda item: item.sort_key(diff)):
            unfixed = found.unfixed
            line, column = found.place(diff)
            where = f"{found.path}:{line}:{column}"
            click.echo(f"  {where}: {unfixed.code} {unfixed.status}: {unfixed.reason}", err=True)

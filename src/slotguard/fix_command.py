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
from slotguard.fixer import UNSAFE, FileFix, Unfixed, fix_source
from slotguard.fixes import no_fix_reason
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
    fixed: Counter[str] = Counter()
    declined: list[_Left] = []
    changed_files = 0
    run_level = {id(diagnostic) for diagnostic in result.run_diagnostics}
    for shown, diagnostics in sorted(by_path.items()):
        wanted = [d for d in diagnostics if d.fix is not None and d.fix.applicability in allowed]
        outcome: FileFix | None = None
        path = paths.get(shown)
        if wanted and path is not None:
            outcome = _fix_file(path, shown, result, settings, unsafe)
            if outcome.error is not None:
                click.echo(f"slotguard: {shown}: {outcome.error}", err=True)
                outcome = None
            elif outcome.changed and _deliver(path, shown, outcome, diff):
                changed_files += 1
                fixed.update(applied.code for applied in outcome.applied)
        declined.extend(_declined(shown, diagnostics, outcome, allowed, run_level))
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
    fixed: Counter[str] = Counter(applied.code for applied in outcome.applied)
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
    return fix_source(data, path, settings, shown, unsafe=unsafe, index=index)


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
class _Left:
    """A finding left unfixed, in the file shown as ``path``."""

    path: str
    unfixed: Unfixed

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.unfixed.line, self.unfixed.column, self.unfixed.code)


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
        reason = _reason(diagnostic, allowed)
        return _Left(shown, Unfixed(diagnostic.code, diagnostic.line, diagnostic.column, reason))

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


def _reason(diagnostic: Diagnostic, allowed: set[Applicability]) -> str:
    if diagnostic.fix is not None:
        return (
            UNSAFE
            if diagnostic.fix.applicability not in allowed
            else "the file could not be read or parsed again"
        )
    return diagnostic.no_fix_reason or no_fix_reason(diagnostic.code)


def _summarise(fixed: Counter[str], files: int, declined: list[_Left], diff: bool) -> None:
    total = sum(fixed.values())
    verb = "would fix" if diff else "fixed"
    by_code = ", ".join(f"{code} ({count})" for code, count in sorted(fixed.items()))
    line = f"slotguard: {verb} {total} finding{'s' if total != 1 else ''}"
    line += f" in {files} file{'s' if files != 1 else ''}" + (f" ({by_code})" if by_code else "")
    click.echo(line, err=True)
    if declined:
        left = len(declined)
        click.echo(f"slotguard: {left} finding{'s' if left != 1 else ''} not fixed:", err=True)
        for found in sorted(declined, key=_Left.sort_key):
            where = f"{found.path}:{found.unfixed.line}:{found.unfixed.column}"
            click.echo(f"  {where}: {found.unfixed.code} {found.unfixed.reason}", err=True)

"""``slotguard fix``: apply the fixes of a run, write or show them, and say
what was fixed and what was not (and why)."""

from __future__ import annotations

import difflib
import re
import sys
from collections import Counter
from pathlib import Path

import click

from slotguard.engine import RunResult
from slotguard.fixes import fixers
from slotguard.fixes.apply import FileFix, fix_source
from slotguard.model.summary import EMPTY_INDEX
from slotguard.report.diagnostic import Applicability, Diagnostic
from slotguard.settings import Settings
from slotguard.writes import write_atomically


def run_fixes(result: RunResult, settings: Settings, *, unsafe: bool, diff: bool) -> bool:
    """Fix the files of ``result``; returns whether any file changed (or,
    with ``diff``, would change)."""
    allowed = {Applicability.SAFE, Applicability.UNSAFE} if unsafe else {Applicability.SAFE}
    by_path: dict[str, list[Diagnostic]] = {}
    for diagnostic in result.diagnostics:
        by_path.setdefault(diagnostic.path, []).append(diagnostic)
    reported = {file.path for file in result.files if not file.context_only}
    paths = {shown: path for shown, path in result.paths.items() if shown in reported}
    fixed: Counter[str] = Counter()
    declined: Counter[tuple[str, str]] = Counter()
    changed_files = 0
    for shown, diagnostics in sorted(by_path.items()):
        wanted = [d for d in diagnostics if d.fix is not None and d.fix.applicability in allowed]
        outcome: FileFix | None = None
        path = paths.get(shown)
        if wanted and path is not None:
            outcome = fix_source(
                path.read_bytes(),
                path,
                settings,
                shown,
                unsafe=unsafe,
                index=result.indexes.get(path, EMPTY_INDEX),
            )
            if outcome.error is not None:
                click.echo(f"slotguard: {shown}: {outcome.error}", err=True)
            elif outcome.changed:
                changed_files += 1
                _deliver(path, shown, outcome, diff)
                fixed.update(applied.code for applied in outcome.applied)
        declined.update(_declined(diagnostics, outcome, allowed))
    _summarise(fixed, changed_files, declined, diff)
    return changed_files > 0


def _deliver(path: Path, shown: str, outcome: FileFix, diff: bool) -> None:
    assert outcome.source is not None and outcome.text is not None
    if diff:
        old = outcome.source.text.splitlines(keepends=True)
        new = outcome.text.splitlines(keepends=True)
        sys.stdout.writelines(difflib.unified_diff(old, new, f"a/{shown}", f"b/{shown}"))
        return
    try:
        write_atomically(path, outcome.source.encode(outcome.text))
    except OSError as error:
        click.echo(f"slotguard: {shown}: not written: {error.strerror or error}", err=True)


def _declined(
    diagnostics: list[Diagnostic], outcome: FileFix | None, allowed: set[Applicability]
) -> Counter[tuple[str, str]]:
    """Why each finding of a file that is still there was not fixed."""
    reasons: Counter[tuple[str, str]] = Counter()
    if outcome is not None and outcome.changed:
        reasons.update(outcome.declined)
        return reasons
    for diagnostic in diagnostics:
        if diagnostic.fix is not None:
            if diagnostic.fix.applicability not in allowed:
                reasons[(diagnostic.code, "the fix is unsafe: run with --unsafe-fixes")] += 1
            elif outcome is not None:
                reasons[(diagnostic.code, "rewriting it would not remove the finding")] += 1
            continue
        reason = diagnostic.no_fix_reason or _no_fixer_reason(diagnostic.code)
        reasons[(diagnostic.code, reason)] += 1
    return reasons


_FIX_SAFETY = re.compile(r"^## Fix safety\s*\n+(?P<text>.+?)(?:\n\n|\Z)", re.M | re.S)


def _no_fixer_reason(code: str) -> str:
    """For rules without a fixer, the first sentence of their Fix safety docs."""
    if code in fixers():
        return "the fix does not apply to this shape of code"
    from slotguard.rules import rule_by_code

    rule = rule_by_code(code)
    if rule is None:
        return "no automatic fix"
    match = _FIX_SAFETY.search(rule.documentation())
    if match is None:
        return "no automatic fix"
    text = " ".join(match.group("text").split())
    return text.split(". ")[0].rstrip(".")


def _summarise(
    fixed: Counter[str], files: int, declined: Counter[tuple[str, str]], diff: bool
) -> None:
    total = sum(fixed.values())
    verb = "would fix" if diff else "fixed"
    by_code = ", ".join(f"{code} ({count})" for code, count in sorted(fixed.items()))
    line = f"slotguard: {verb} {total} finding{'s' if total != 1 else ''}"
    line += f" in {files} file{'s' if files != 1 else ''}" + (f" ({by_code})" if by_code else "")
    click.echo(line, err=True)
    if declined:
        left = sum(declined.values())
        click.echo(f"slotguard: {left} finding{'s' if left != 1 else ''} not fixed:", err=True)
        for (code, reason), count in sorted(declined.items()):
            click.echo(f"  {code} ({count}): {reason}", err=True)

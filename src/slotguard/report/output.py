"""What a run prints: the findings in the chosen format, then a summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from slotguard.diagnostic import Applicability, Diagnostic

if TYPE_CHECKING:
    from slotguard.report.json_format import Edits

SHOWS_EDITS = frozenset({"json"})
"""The formats that show the edits of each fix."""


class SourceReader:
    """Source lines of reported files, read once each, decoded as the engine
    decodes them (a declared encoding, a BOM). Lines are split on ``\\n``
    only, as the engine counts them (``str.splitlines`` would also split on
    form feeds and other separators)."""

    def __init__(self, texts: dict[str, str] | None = None) -> None:
        self._texts = dict(texts or {})
        self._lines: dict[str, list[str] | None] = {}

    def __call__(self, path: str) -> list[str] | None:
        if path not in self._lines:
            text = self._texts.get(path)
            if text is None:
                try:
                    text = source_text(Path(path).read_bytes())
                except OSError:
                    text = None
            self._lines[path] = (
                None if text is None else [line.removesuffix("\r") for line in text.split("\n")]
            )
        return self._lines[path]


def source_text(data: bytes) -> str:
    """A file's text for showing it: decoded as Python decodes it, or, for
    a file that does not decode (reported as SG000), as UTF-8 with
    replacement characters."""
    from slotguard.source import SourceError, decode

    try:
        return decode(data).text
    except SourceError:
        return data.decode("utf-8", errors="replace")


def render(
    diagnostics: Sequence[Diagnostic],
    fmt: str,
    sources: SourceReader,
    edits: Edits | None = None,
) -> str:
    """The findings in a format; ``edits``, the edits of their fixes, for
    the formats that show them (json)."""
    from slotguard.report.text import format_concise, format_full

    if fmt == "full":
        return format_full(diagnostics, sources)
    if fmt == "concise":
        return format_concise(diagnostics, sources)
    if fmt == "json":
        from slotguard.report.json_format import format_json

        return format_json(diagnostics, sources, edits)
    from slotguard.report.sarif import format_sarif, repository_root

    # The repository the findings are in, even when slotguard runs from
    # outside it; the current directory's when it cannot tell.
    root = repository_root(Path.cwd())
    if diagnostics:
        around_files = repository_root(Path(diagnostics[0].path).absolute().parent)
        if (around_files / ".git").exists():
            root = around_files
    if fmt == "sarif":
        return format_sarif(diagnostics, sources, root=root)
    from slotguard.report.github import format_github

    return format_github(diagnostics, sources, root=root)


def summary(diagnostics: Sequence[Diagnostic], *, baselined: int = 0, stale: int = 0) -> str:
    if not diagnostics:
        text = "All checks passed."
    else:
        files = len({d.path for d in diagnostics})
        noun = "finding" if len(diagnostics) == 1 else "findings"
        text = f"Found {len(diagnostics)} {noun} in {files} file{'s' if files != 1 else ''}."
        safe = sum(
            1
            for d in diagnostics
            if d.fix is not None and d.fix.applicability is Applicability.SAFE
        )
        unsafe = sum(1 for d in diagnostics if d.fix is not None) - safe
        if safe:
            text += f"\n{safe} fixable with `slotguard fix`."
        if unsafe:
            text += f"\n{unsafe} fixable with `slotguard fix --unsafe-fixes`."
    text += baseline_note(baselined, stale)
    return ("\n" + text if diagnostics else text) + "\n"


def baseline_note(baselined: int, stale: int) -> str:
    note = ""
    if baselined:
        noun = "finding" if baselined == 1 else "findings"
        note += f"\n{baselined} {noun} in the baseline not reported."
    if stale:
        entries = "entry is" if stale == 1 else "entries are"
        note += (
            f"\n{stale} baseline {entries} stale (fixed or changed): "
            "rewrite the baseline with --write-baseline."
        )
    return note


def statistics(diagnostics: Sequence[Diagnostic], fmt: str = "full") -> str:
    """Findings counted by rule: a table ending with the total, where
    ``[*]`` marks the rules whose findings ``slotguard fix`` fixes (safe
    fixes), or, with ``fmt`` json, a list of ``{code, name, count, fixable,
    unsafe_fixable}`` objects."""
    counts = Counter((d.code, d.name) for d in diagnostics)
    safe = Counter(
        d.code
        for d in diagnostics
        if d.fix is not None and d.fix.applicability is Applicability.SAFE
    )
    unsafe = Counter(
        d.code
        for d in diagnostics
        if d.fix is not None and d.fix.applicability is Applicability.UNSAFE
    )
    if fmt == "json":
        import json

        rows_json = [
            {
                "code": code,
                "name": name,
                "count": count,
                "fixable": safe[code],
                "unsafe_fixable": unsafe[code],
            }
            for (code, name), count in sorted(counts.items())
        ]
        return json.dumps(rows_json, indent=2) + "\n"
    rows = []
    for (code, name), count in sorted(counts.items()):
        marker = "[*]" if safe[code] else "   "
        rows.append(f"{count:>5}  {code}  {marker} {name}")
    if rows:
        rows.append(f"{len(diagnostics):>5}  total")
    return "".join(row + "\n" for row in rows)


FORMATS = ("full", "concise", "json", "sarif", "github")
SUMMARISED = frozenset({"full", "concise"})

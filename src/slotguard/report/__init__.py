"""Diagnostics and how they are shown: formats, noqa, statistics."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from slotguard.report.diagnostic import Diagnostic
from slotguard.report.json_format import format_json
from slotguard.report.text import SourceLines, format_concise, format_full

Formatter = Callable[[Iterable[Diagnostic], SourceLines], str]

FORMATTERS: dict[str, Formatter] = {
    "full": format_full,
    "concise": format_concise,
    "json": format_json,
}
"""Formats that list findings; ``summarised`` ones are followed by a count."""

SUMMARISED = frozenset({"full", "concise"})

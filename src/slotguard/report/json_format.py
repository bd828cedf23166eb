"""The ``json`` format: a list of findings with every field of SPEC section 5.

A finding's ``fix`` carries its ``edits`` when the run worked them out (as
ruff's JSON does): replacements of the source, with 1-based lines and
columns, the end exclusive, to apply from the last to the first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from slotguard.diagnostic import Diagnostic, Edit, Span
from slotguard.report.text import SourceLines

Edits = Mapping[tuple[str, str, Span], Sequence[Edit]]
"""The edits of each fixable finding, by path, code and span."""


def as_dict(diagnostic: Diagnostic, edits: Edits | None = None) -> dict[str, Any]:
    span = diagnostic.span
    fix: dict[str, Any] | None = None
    if diagnostic.fix is not None:
        fix = {
            "applicability": diagnostic.fix.applicability.value,
            "message": diagnostic.fix.message,
        }
        if edits is not None:
            found = edits.get((diagnostic.path, diagnostic.code, span), ())
            fix["edits"] = [_edit(edit) for edit in found]
    return {
        "code": diagnostic.code,
        "name": diagnostic.name,
        "message": diagnostic.message,
        "path": diagnostic.path,
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
        "severity": diagnostic.severity,
        "fix": fix,
        "related": [
            {
                "path": r.path or diagnostic.path,
                "line": r.span.line,
                "column": r.span.column,
                "message": r.message,
            }
            for r in diagnostic.related
        ],
    }


def _edit(edit: Edit) -> dict[str, Any]:
    return {
        "content": edit.content,
        "line": edit.span.line,
        "column": edit.span.column,
        "end_line": edit.span.end_line,
        "end_column": edit.span.end_column,
    }


def format_json(
    diagnostics: Iterable[Diagnostic], sources: SourceLines, edits: Edits | None = None
) -> str:
    return json.dumps([as_dict(d, edits) for d in diagnostics], indent=2) + "\n"

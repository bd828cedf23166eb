"""The ``json`` format: a list of findings with every field of SPEC section 5."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from slotguard.diagnostic import Diagnostic
from slotguard.report.text import SourceLines


def as_dict(diagnostic: Diagnostic) -> dict[str, Any]:
    span = diagnostic.span
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
        "fix": None
        if diagnostic.fix is None
        else {
            "applicability": diagnostic.fix.applicability.value,
            "message": diagnostic.fix.message,
        },
        "related": [
            {"line": r.span.line, "column": r.span.column, "message": r.message}
            for r in diagnostic.related
        ],
    }


def format_json(diagnostics: Iterable[Diagnostic], sources: SourceLines) -> str:
    return json.dumps([as_dict(d) for d in diagnostics], indent=2) + "\n"

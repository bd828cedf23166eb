"""The ``sarif`` format: SARIF 2.1.0, as GitHub code scanning reads it.

One run, with every rule's metadata (its documentation is the help text) and
one result per finding: the reported place as the physical location, the
places the message names (where the resource was acquired, where it leaks)
as related locations, and a partial fingerprint that survives unrelated
edits (the baseline's). Paths under the repository root are relative URIs
against ``%SRCROOT%``; others are absolute ``file:`` URIs.

A finding's fix is described under the result's ``properties``: a SARIF
``fix`` must carry the edits themselves, which a ``Diagnostic`` does not.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from slotguard import __version__
from slotguard.diagnostic import Diagnostic, Span
from slotguard.report.baseline import fingerprint
from slotguard.report.text import SourceLines

if TYPE_CHECKING:
    from slotguard.rules import Rule

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SOURCE_ROOT = "%SRCROOT%"
README_URL = "https://github.com/slotguard/slotguard/blob/main/README.md"
"""Where each rule's ``helpUri`` points: its section of the README."""
FINGERPRINT_KEY = "slotguard/v1"

_LEVELS = {"error": "error", "warning": "warning"}
_SECTION = re.compile(r"^## (?P<title>.+)$", re.MULTILINE)


def repository_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``.git`` (a
    directory, or a file in a worktree or submodule); ``start`` if none."""
    start = start.absolute()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return start


def root_relative(path: str, root: Path, base: Path | None = None) -> str | None:
    """``path`` (relative to ``base``, default the current directory)
    relative to ``root`` in posix form, or None if it is outside ``root``."""
    given = Path(path)
    absolute = given if given.is_absolute() else (base or Path.cwd()) / given
    for resolve in (os.path.abspath, os.path.realpath):
        try:
            relative = Path(resolve(absolute)).relative_to(resolve(root))
        except ValueError:
            continue
        return relative.as_posix()
    return None


def format_sarif(
    diagnostics: Iterable[Diagnostic],
    sources: SourceLines,
    *,
    root: Path,
    base: Path | None = None,
) -> str:
    """A SARIF 2.1.0 log of ``diagnostics``.

    ``root`` is the repository root that URIs are relative to (see
    ``repository_root``); ``base`` is the directory the diagnostics' relative
    paths start from (default: the current directory). ``sources`` gives a
    file's lines, for the fingerprints.
    """
    from slotguard.rules import all_rules

    rules = all_rules()
    index = {rule.code: number for number, rule in enumerate(rules)}
    root = Path(os.path.abspath(root))
    results = [
        _result(diagnostic, print_.digest(), index, root, base)
        for diagnostic, print_ in fingerprint(diagnostics, sources)
    ]
    root_uri = root.as_uri().rstrip("/") + "/"
    log = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "slotguard",
                        "version": __version__,
                        "rules": [_rule(rule) for rule in rules],
                    }
                },
                "originalUriBaseIds": {SOURCE_ROOT: {"uri": root_uri}},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def rule_anchor(code: str, name: str) -> str:
    """The anchor GitHub gives the README heading ``### SG201 release-skipped-on-exit``."""
    return f"{code}-{name}".lower()


def _rule(rule: type[Rule]) -> dict[str, Any]:
    documentation = rule.documentation()
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": section(documentation, "What it does") or rule.summary},
        "helpUri": f"{README_URL}#{rule_anchor(rule.code, rule.name)}",
        "help": {"text": documentation, "markdown": documentation},
        "defaultConfiguration": {"enabled": rule.default, "level": "error"},
    }


def section(documentation: str, title: str) -> str | None:
    """The text of one ``## title`` section of a rule's documentation."""
    headings = list(_SECTION.finditer(documentation))
    for number, heading in enumerate(headings):
        if heading.group("title").strip() == title:
            end = headings[number + 1].start() if number + 1 < len(headings) else None
            return documentation[heading.end() : end].strip() or None
    return None


def _result(
    diagnostic: Diagnostic, digest: str, index: dict[str, int], root: Path, base: Path | None
) -> dict[str, Any]:
    artifact = _artifact(diagnostic.path, root, base)
    result: dict[str, Any] = {"ruleId": diagnostic.code}
    if diagnostic.code in index:
        result["ruleIndex"] = index[diagnostic.code]
    result["level"] = _LEVELS.get(diagnostic.severity, "note")
    result["message"] = {"text": diagnostic.message}
    result["locations"] = [_location(artifact, diagnostic.span)]
    if diagnostic.related:
        result["relatedLocations"] = [
            {
                **_location(
                    artifact if related.path is None else _artifact(related.path, root, base),
                    related.span,
                ),
                "id": number,
                "message": {"text": related.message},
            }
            for number, related in enumerate(diagnostic.related, 1)
        ]
    result["partialFingerprints"] = {FINGERPRINT_KEY: digest}
    if diagnostic.fix is not None:
        result["properties"] = {
            "fix": {
                "applicability": diagnostic.fix.applicability.value,
                "description": diagnostic.fix.message,
            }
        }
    return result


def _artifact(path: str, root: Path, base: Path | None) -> dict[str, str]:
    relative = root_relative(path, root, base)
    if relative is not None:
        return {"uri": quote(relative, safe="/"), "uriBaseId": SOURCE_ROOT}
    absolute = Path(path) if Path(path).is_absolute() else (base or Path.cwd()) / path
    return {"uri": Path(os.path.abspath(absolute)).as_uri()}


def _location(artifact: dict[str, str], span: Span) -> dict[str, Any]:
    region: dict[str, int] = {"startLine": max(span.line, 1), "startColumn": max(span.column, 1)}
    if (span.end_line, span.end_column) > (span.line, span.column):
        region["endLine"] = span.end_line
        region["endColumn"] = span.end_column
    return {"physicalLocation": {"artifactLocation": artifact, "region": region}}

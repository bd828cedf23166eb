"""The ``github`` format: GitHub Actions workflow commands.

Each finding becomes ``::error file=...,line=...,col=...,endLine=...,
endColumn=...,title=...::message``, which the Actions runner turns into an
annotation on the file and line of the pull request. Property values and the
message are escaped as the runner reads them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from slotguard.diagnostic import Diagnostic
from slotguard.report.sarif import root_relative
from slotguard.report.text import SourceLines, fix_line

_COMMANDS = {"error": "error", "warning": "warning"}


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF are escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: also ``:`` and ``,``, which
    would end the value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(
    diagnostics: Iterable[Diagnostic],
    sources: SourceLines,
    *,
    root: Path | None = None,
    base: Path | None = None,
) -> str:
    """One workflow command per finding.

    The runner resolves ``file`` against the workspace, the repository root:
    with ``root`` given, paths under it are made relative to it (``base`` is
    where the diagnostics' relative paths start, default the current
    directory); otherwise paths are printed as the diagnostics give them.
    """
    return "".join(
        command_line(diagnostic, _path(diagnostic.path, root, base)) + "\n"
        for diagnostic in diagnostics
    )


def command_line(diagnostic: Diagnostic, path: str) -> str:
    span = diagnostic.span
    properties = [("file", path), ("line", str(span.line)), ("col", str(span.column))]
    if (span.end_line, span.end_column) > (span.line, span.column):
        properties += [("endLine", str(span.end_line)), ("endColumn", str(span.end_column))]
    properties.append(("title", f"{diagnostic.code} {diagnostic.name}"))
    listed = ",".join(f"{name}={escape_property(value)}" for name, value in properties)
    message = f"{diagnostic.code} {diagnostic.message}"
    if diagnostic.fix is not None:
        message += f"\n{fix_line(diagnostic)}"
    command = _COMMANDS.get(diagnostic.severity, "notice")
    return f"::{command} {listed}::{escape_data(message)}"


def _path(path: str, root: Path | None, base: Path | None) -> str:
    if root is None:
        return path
    relative = root_relative(path, root, base)
    return relative if relative is not None else path

"""Whether slotguard's static check reports the code that took a leaked connection.

Imported only once a leak has been found: it loads libcst and the analysis,
which a clean test run never pays for. Each file is checked at most once per
process, as ``slotguard check FILE`` would check it (the nearest
configuration, the project modules it imports read for context), and the
findings are matched against the taking stack, innermost frame first:

1. a finding on the very line of a frame (``conn = await pool.acquire()``,
   SG101/SG201 report the acquisition);
2. a finding in the same function as a frame: a session takes its connection
   at its first statement, while SG102 reports the line that created it, and
   SG4 reports the slow call, not the statement the transaction waits after;
3. for a frame of module code (a script's top level), a finding on a line of
   that top level: SG303 reports the session created at import.

A file that cannot be checked adds nothing: the leak report stands without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slotguard.runtime.stack import Frame

MAX_FINDINGS = 3


@dataclass(frozen=True, slots=True)
class StaticFinding:
    """A finding of ``slotguard check`` that concerns a frame of a taking stack."""

    code: str
    message: str
    filename: str
    line: int
    relation: str
    """How it concerns the frame: "on this line", "in the same function", "at the top level"."""


class StaticCheck:
    """``slotguard check`` on the files of taking stacks, each file once."""

    def __init__(self) -> None:
        self._findings: dict[str, list[Any]] = {}

    def findings(self, frames: Sequence[Frame]) -> list[StaticFinding]:
        """The findings that concern a taking stack (innermost frame first), closest
        first, at most MAX_FINDINGS."""
        found: dict[tuple[str, int, str], StaticFinding] = {}
        for relation, matches in (
            ("on this line", _on_line),
            ("in the same function", _in_function),
            ("at the top level", _at_top_level),
        ):
            for frame in frames:
                for diagnostic in self._diagnostics(frame.filename):
                    if matches(frame, diagnostic.line):
                        key = (frame.filename, diagnostic.line, diagnostic.code)
                        found.setdefault(
                            key,
                            StaticFinding(
                                diagnostic.code,
                                diagnostic.message,
                                frame.filename,
                                diagnostic.line,
                                relation,
                            ),
                        )
        return list(found.values())[:MAX_FINDINGS]

    def _diagnostics(self, filename: str) -> list[Any]:
        cached = self._findings.get(filename)
        if cached is None:
            cached = self._findings[filename] = _check(filename)
        return cached


def _on_line(frame: Frame, line: int) -> bool:
    return line == frame.line


def _in_function(frame: Frame, line: int) -> bool:
    if frame.is_module or not frame.lines:
        return False
    return frame.first_line <= line <= max(frame.lines)


def _at_top_level(frame: Frame, line: int) -> bool:
    return frame.is_module and line in frame.lines


def _check(filename: str) -> list[Any]:
    path = Path(os.path.abspath(filename))
    if not path.is_file() or path.suffix != ".py":
        return []
    try:
        return list(_run(path))
    except Exception:  # the leak report stands without the static view
        return []


def _run(path: Path) -> Iterable[Any]:
    from slotguard import config as configuration
    from slotguard.engine import check_paths
    from slotguard.project import project_files, project_root
    from slotguard.settings import Settings

    found = configuration.discover(path.parent)
    config = configuration.load(found) if found is not None else configuration.Config()
    settings = Settings.from_config(config, use_cache=False, jobs=1)
    shown = str(path)
    # As `slotguard check FILE` does: with the rest of the file's project.
    root = project_root([path], found)
    project = project_files(root, settings)
    result = check_paths([path], settings, {path: shown}, project=project, root=root)
    return (diagnostic for diagnostic in result.diagnostics if diagnostic.path == shown)

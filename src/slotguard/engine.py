"""The per-file pipeline: read, prefilter, decode, parse, run rules, locate.

``check_file`` never raises for a bad file: whatever stops a file from being
analysed becomes an SG000 finding, and the other files go on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from slotguard.report.diagnostic import Diagnostic, Related, Span
from slotguard.settings import Settings
from slotguard.source import SourceError, decode

if TYPE_CHECKING:
    import libcst as cst

    from slotguard.rules import Context

ANALYSIS_ERROR = ("SG000", "file-not-analysed")


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    diagnostics: tuple[Diagnostic, ...]
    analysed: bool = False
    """Whether the file passed the prefilter and its tree was analysed."""


@dataclass(slots=True)
class RunResult:
    files: list[FileResult] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return sorted(
            (d for result in self.files for d in result.diagnostics), key=Diagnostic.sort_key
        )


@cache
def _trigger_pattern(words: frozenset[str]) -> re.Pattern[bytes]:
    alternatives = b"|".join(re.escape(w.encode()) for w in sorted(words, key=len, reverse=True))
    return re.compile(rb"\b(?:" + alternatives + rb")\b")


def may_have_findings(data: bytes, settings: Settings) -> bool:
    """The prefilter: can any rule find anything in a file with these bytes?

    A finding needs a value of a known type, and every type enters a module
    through a name in the model's trigger words (see ``Model.trigger_words``).
    """
    return _trigger_pattern(settings.model.trigger_words()).search(data) is not None


def analysis_error(path: str, error: SourceError) -> Diagnostic:
    code, name = ANALYSIS_ERROR
    return Diagnostic(
        code=code,
        name=name,
        message=f"file not analysed: {error.reason}",
        path=path,
        span=Span(error.line, error.column, error.line, error.column),
    )


def check_file(path: Path, settings: Settings, display: str | None = None) -> FileResult:
    shown = display if display is not None else path.as_posix()
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = f"it cannot be read: {error.strerror or error}"
        return FileResult(shown, (analysis_error(shown, SourceError(reason)),))
    return check_bytes(data, path, settings, shown)


def check_bytes(data: bytes, path: Path, settings: Settings, shown: str) -> FileResult:
    """Findings for one file's bytes.

    Decoding is cheap and a binary or undecodable ``.py`` is broken for
    everyone, so it is checked for every file; parsing is not, so a syntax
    error is found only in files the prefilter sends on.
    """
    if not may_have_findings(data, settings):
        try:
            decode(data)
        except SourceError as error:
            return FileResult(shown, (analysis_error(shown, error),))
        return FileResult(shown, ())
    try:
        source = decode(data)
        from slotguard.parse import parse

        tree = parse(source.text)
    except SourceError as error:
        return FileResult(shown, (analysis_error(shown, error),))
    return FileResult(shown, tuple(analyse(tree, source.text, path, settings, shown)), True)


def analyse(
    tree: cst.Module, text: str, path: Path, settings: Settings, shown: str
) -> list[Diagnostic]:
    """Run the selected rules over a parsed module."""
    from slotguard.model.infer import ModuleInfo
    from slotguard.model.names import module_name_for
    from slotguard.rules import all_rules

    codes = settings.codes_for(path)
    from slotguard.rules import Context

    module = ModuleInfo(
        tree,
        settings.model,
        module_name_for(path),
        is_package=path.name == "__init__.py",
    )
    context = Context(module, settings, shown)
    try:
        for rule in all_rules():
            if rule.code in codes and rule.code != ANALYSIS_ERROR[0]:
                rule().check(context.for_rule(rule))
        return _diagnostics(context, tree, text, shown)
    except RecursionError:
        reason = "nesting is too deep to analyse (recursion limit reached)"
        return [analysis_error(shown, SourceError(reason))]


def _diagnostics(context: Context, tree: cst.Module, text: str, shown: str) -> list[Diagnostic]:
    """Locate the findings, drop the suppressed ones, and format messages."""
    from slotguard.locate import Locator
    from slotguard.report.noqa import Suppressions
    from slotguard.rules import Context

    if not context.findings:
        return []
    nodes = [f.node for f in context.findings]
    nodes += [node for f in context.findings for node, _ in f.related]
    nodes += context.marked_nodes
    locator = Locator(tree, nodes)
    suppressions = Suppressions.of(text)

    def line_of(index: int) -> int:
        return locator.line(context.marked_nodes[index])

    diagnostics = []
    seen: set[tuple[str, Span]] = set()
    for finding in context.findings:
        span = locator.span(finding.node)
        if suppressions.suppresses(finding.rule.code, span.line):
            continue
        key = (finding.rule.code, span)
        if key in seen:
            continue
        seen.add(key)
        diagnostics.append(
            Diagnostic(
                code=finding.rule.code,
                name=finding.rule.name,
                message=Context.resolve_lines(finding.message, line_of),
                path=shown,
                span=span,
                fix=finding.fix,
                related=tuple(
                    Related(locator.span(node), Context.resolve_lines(label, line_of))
                    for node, label in finding.related
                ),
            )
        )
    return diagnostics


def check_paths(files: Sequence[Path], settings: Settings, display: dict[Path, str]) -> RunResult:
    result = RunResult()
    for path in files:
        result.files.append(check_file(path, settings, display.get(path)))
    return result

"""Baselines: record today's findings so that only new ones are reported.

A finding's fingerprint is its path, its code, the source of its reported
line and its occurrence (SPEC section 6). Line numbers are left out, so
adding lines above a finding or moving its function does not change it. The
source is normalised so that re-indenting it (moving it into a block) or
reformatting it does not either: the trailing comment is dropped and
whitespace is ignored when comparing. The occurrence numbers findings with
the same path, code and normalised line in file order, so a second identical
leak added to a file is a new finding (the file has one more than the
baseline allows), whichever of the two comes first.

The file is JSON, versioned, one finding per line, sorted by fingerprint
rather than by line so that it changes only where findings change.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slotguard.diagnostic import Diagnostic
from slotguard.report.text import SourceLines

BASELINE_VERSION = 1
_ANALYSIS_ERROR = "SG000"


class BaselineError(Exception):
    """The baseline file cannot be used; the message says why and what to do."""


def normalise_path(path: str) -> str:
    """A path as given, in posix form without ``./`` or ``..`` detours."""
    posix = path.replace("\\", "/")
    normal = posixpath.normpath(posix) if posix else posix
    return normal


def normalise_source(line: str) -> str:
    """The code of one line, without its trailing comment, whitespace runs
    collapsed to one space and stripped at both ends (for reading)."""
    return " ".join(_without_comment(line).split())


def _without_comment(line: str) -> str:
    """``line`` up to a ``#`` that is outside string quotes.

    Only this line is seen, so a line that starts inside a multi-line string
    may be cut wrongly; the cut is the same every time, which is all a
    fingerprint needs.
    """
    quote = ""
    index = 0
    while index < len(line):
        char = line[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if line.startswith(quote, index):
                index += len(quote)
                quote = ""
                continue
        elif char == "#":
            return line[:index]
        elif char in "'\"":
            quote = char * 3 if line.startswith(char * 3, index) else char
            index += len(quote)
            continue
        index += 1
    return line


@dataclass(frozen=True, slots=True, order=True)
class Fingerprint:
    """What identifies a finding across unrelated edits."""

    path: str
    code: str
    source: str
    """The reported line, normalised by ``normalise_source``."""
    occurrence: int
    """Index among the file's findings with the same code and ``key``."""

    @property
    def key(self) -> tuple[str, str, str]:
        """What occurrences are counted over: spacing does not count, so
        reformatting a line keeps its findings."""
        return (self.path, self.code, "".join(self.source.split()))

    @property
    def identity(self) -> tuple[tuple[str, str, str], int]:
        """What two fingerprints must share to be the same finding."""
        return (self.key, self.occurrence)

    def digest(self) -> str:
        """A short stable hash, for formats that want an opaque fingerprint."""
        path, code, source = self.key
        text = "\x00".join((path, code, source, str(self.occurrence)))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "code": self.code,
            "source": self.source,
            "occurrence": self.occurrence,
        }


def fingerprint(
    diagnostics: Iterable[Diagnostic], sources: SourceLines
) -> list[tuple[Diagnostic, Fingerprint]]:
    """Each diagnostic with its fingerprint, in the order given.

    ``sources(path)`` gives a file's lines (as the formatters get them); a
    file that cannot be read counts as empty lines.
    """
    given = list(diagnostics)
    lines_of: dict[str, Sequence[str]] = {}
    partial: list[tuple[str, str, str]] = []
    for diagnostic in given:
        if diagnostic.path not in lines_of:
            lines_of[diagnostic.path] = sources(diagnostic.path) or ()
        lines = lines_of[diagnostic.path]
        line = lines[diagnostic.line - 1] if 1 <= diagnostic.line <= len(lines) else ""
        partial.append((normalise_path(diagnostic.path), diagnostic.code, normalise_source(line)))
    occurrence: dict[int, int] = {}
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for index, (path, code, source) in enumerate(partial):
        groups[(path, code, "".join(source.split()))].append(index)
    for members in groups.values():
        members.sort(key=lambda index: given[index].sort_key())
        for number, index in enumerate(members):
            occurrence[index] = number
    return [
        (diagnostic, Fingerprint(*partial[index], occurrence[index]))
        for index, diagnostic in enumerate(given)
    ]


def dumps_baseline(diagnostics: Iterable[Diagnostic], sources: SourceLines) -> str:
    """The text of a baseline file recording ``diagnostics``."""
    return _dumps(sorted(print_ for _, print_ in fingerprint(diagnostics, sources)))


def _dumps(prints: list[Fingerprint]) -> str:
    rows = ",\n".join(
        "    " + json.dumps(print_.as_dict(), ensure_ascii=False) for print_ in prints
    )
    body = f"[\n{rows}\n  ]" if rows else "[]"
    return f'{{\n  "version": {BASELINE_VERSION},\n  "findings": {body}\n}}\n'


def write_baseline(file: Path, diagnostics: Iterable[Diagnostic], sources: SourceLines) -> int:
    """Write a baseline of ``diagnostics`` to ``file``; returns how many
    findings it records."""
    prints = sorted(print_ for _, print_ in fingerprint(diagnostics, sources))
    try:
        file.write_text(_dumps(prints), encoding="utf-8", newline="\n")
    except OSError as error:
        raise BaselineError(f"cannot write baseline {file}: {error.strerror or error}") from None
    return len(prints)


@dataclass(frozen=True, slots=True)
class Filtered:
    """The outcome of checking findings against a baseline."""

    diagnostics: tuple[Diagnostic, ...]
    """The findings to report: those the baseline does not record."""
    baselined: int
    """How many findings the baseline recorded and so are not reported."""
    stale: int
    """Baseline entries no current finding matches (fixed, or changed past
    recognition), counted only for files that were checked and analysed."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """The findings recorded in a baseline file."""

    fingerprints: frozenset[Fingerprint]

    @classmethod
    def load(cls, file: Path) -> Baseline:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as error:
            raise BaselineError(
                f"cannot read baseline {file}: {error.strerror or error}; "
                "create it with --write-baseline"
            ) from None
        except UnicodeDecodeError:
            raise BaselineError(f"baseline {file} is not UTF-8 text") from None
        return cls.loads(text, str(file))

    @classmethod
    def loads(cls, text: str, origin: str = "baseline") -> Baseline:
        remedy = "; write a new one with --write-baseline"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise BaselineError(
                f"{origin} is not valid JSON (line {error.lineno}: {error.msg}){remedy}"
            ) from None
        if not isinstance(data, dict) or "version" not in data:
            raise BaselineError(f"{origin} is not a slotguard baseline{remedy}")
        if data["version"] != BASELINE_VERSION:
            raise BaselineError(
                f"{origin} has baseline version {data['version']!r}; this slotguard reads "
                f"version {BASELINE_VERSION}{remedy}"
            )
        findings = data.get("findings")
        if not isinstance(findings, list):
            raise BaselineError(f"{origin} has no `findings` list{remedy}")
        prints = set()
        for number, entry in enumerate(findings, 1):
            prints.add(_entry(entry, f"{origin}: finding {number}", remedy))
        return cls(frozenset(prints))

    def __len__(self) -> int:
        return len(self.fingerprints)

    def filter(
        self,
        diagnostics: Iterable[Diagnostic],
        sources: SourceLines,
        *,
        checked: Collection[str] | None = None,
    ) -> Filtered:
        """Drop the findings the baseline records; count its stale entries.

        ``checked`` are the paths of the files this run checked (as the
        diagnostics name them): entries for other files are not stale, they
        were just not looked at. None means every file was checked. An entry
        for a file that now fails to parse (SG000) is not stale either: the
        file was not analysed.
        """
        recorded = {print_.identity: print_ for print_ in self.fingerprints}
        reported = []
        unanalysed: set[str] = set()
        for diagnostic, print_ in fingerprint(diagnostics, sources):
            if diagnostic.code == _ANALYSIS_ERROR:
                unanalysed.add(print_.path)
            if recorded.pop(print_.identity, None) is None:
                reported.append(diagnostic)
        scope = None if checked is None else {normalise_path(path) for path in checked}
        stale = sum(
            1
            for print_ in recorded.values()
            if (scope is None or print_.path in scope)
            and (print_.path not in unanalysed or print_.code == _ANALYSIS_ERROR)
        )
        return Filtered(tuple(reported), len(self.fingerprints) - len(recorded), stale)


def _entry(entry: object, where: str, remedy: str) -> Fingerprint:
    if not isinstance(entry, dict):
        raise BaselineError(f"{where} is not an object{remedy}")
    fields = {"path": str, "code": str, "source": str, "occurrence": int}
    for name, kind in fields.items():
        value = entry.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BaselineError(f"{where} has no valid `{name}`{remedy}")
    return Fingerprint(
        normalise_path(entry["path"]), entry["code"], entry["source"], entry["occurrence"]
    )

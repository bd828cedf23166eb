"""``# noqa`` comments: reading them, writing them, and finding unused ones.

``# noqa: SG201`` (or a bare ``# noqa``) suppresses findings reported on its
line; ``# slotguard: noqa`` (optionally with codes) on a line of its own
suppresses a whole file.

A reported line that ends inside a multi-line string, or continues with a
backslash, cannot carry a comment. Its findings are suppressed by the comment
on the line where that string or continuation ends, and that is where
``add_noqa`` writes it, as ruff does. Comments are found by Python's tokenizer
so that ``"# noqa"`` inside a string suppresses nothing.
"""

from __future__ import annotations

import re
import tokenize
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

from slotguard.diagnostic import Diagnostic

_CODE_LIST = r"[A-Za-z]+[0-9]*(?:[\s,]+[A-Za-z]+[0-9]+)*"
LINE_NOQA = re.compile(rf"#\s*noqa(?::\s*(?P<codes>{_CODE_LIST}))?", re.IGNORECASE)
FILE_NOQA = re.compile(
    rf"^[ \t]*#[ \t]*slotguard:[ \t]*noqa(?::[ \t]*(?P<codes>{_CODE_LIST}))?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_ANY_NOQA = re.compile("noqa", re.IGNORECASE)
_OWN_PREFIX = "SG"
_ANALYSIS_ERROR = "SG000"
_UNUSED_NOQA = "SG001"
"""Reported before comments are read (the file did not parse): no comment can
suppress it, so none is written for it."""

_STRING_STARTS = {
    getattr(tokenize, name)
    for name in ("FSTRING_START", "TSTRING_START")
    if hasattr(tokenize, name)
}
_STRING_ENDS = {
    getattr(tokenize, name) for name in ("FSTRING_END", "TSTRING_END") if hasattr(tokenize, name)
}


def parse_codes(text: str | None) -> frozenset[str] | None:
    """The codes of a noqa comment; None means all codes."""
    if not text:
        return None
    return frozenset(code.upper() for code in re.split(r"[\s,]+", text) if code)


def _covers(codes: Collection[str] | None, code: str) -> bool:
    return codes is None or any(code.startswith(c) for c in codes)


def _ordered_codes(text: str) -> list[str]:
    return [code.upper() for code in re.split(r"[\s,]+", text) if code]


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment token: its line (1-based), its offset in the line (0-based)
    and its text from ``#`` to the end of the line."""

    line: int
    offset: int
    text: str


class Layout:
    """The lines of a file, their comments, and where each line's noqa goes.

    Lines are split on ``\\n`` (a CRLF line keeps its ``\\r`` in its ending),
    as the engine counts them when it reports a line number.
    """

    def __init__(self, text: str) -> None:
        contents: list[str] = []
        endings: list[str] = []
        for raw in text.split("\n"):
            if raw.endswith("\r"):
                contents.append(raw[:-1])
                endings.append("\r\n")
            else:
                contents.append(raw)
                endings.append("\n")
        endings[-1] = ""
        if contents[-1] == "" and len(contents) > 1:
            contents.pop()
            endings.pop()
        self.contents: tuple[str, ...] = tuple(contents)
        self.endings: tuple[str, ...] = tuple(endings)
        self.comments: dict[int, Comment] = {}
        self._string_end: dict[int, int] = {}
        self.tokenized = self._tokenize()

    def _tokenize(self) -> bool:
        """Record comments, and for each line that ends inside a multi-line
        string the line where that string ends; False if the text does not
        tokenize, and then neither can be trusted."""
        lines = iter(c + e for c, e in zip(self.contents, self.endings, strict=True))
        open_strings: list[int] = []

        string_end = self._string_end

        def spans(start: int, end: int) -> None:
            for line in range(start, end):
                string_end[line] = max(string_end.get(line, end), end)

        try:
            for token in tokenize.generate_tokens(lambda: next(lines, "")):
                kind, (start, offset), (end, _) = token.type, token.start, token.end
                if kind == tokenize.COMMENT:
                    self.comments[start] = Comment(start, offset, token.string)
                elif kind == tokenize.STRING and end > start:
                    spans(start, end)
                elif kind in _STRING_STARTS:
                    open_strings.append(start)
                elif kind in _STRING_ENDS and open_strings:
                    spans(open_strings.pop(), end)
        except (tokenize.TokenError, SyntaxError):
            return False
        return True

    def __len__(self) -> int:
        return len(self.contents)

    @cached_property
    def targets(self) -> tuple[int, ...]:
        """For each line (index ``line - 1``), the line whose comment applies
        to it: itself, or where its string or backslash continuation ends."""
        count = len(self.contents)
        targets = list(range(1, count + 1))
        for line in range(count, 0, -1):
            if line in self._string_end:
                targets[line - 1] = targets[self._string_end[line] - 1]
            elif line < count and self._continues(line):
                targets[line - 1] = targets[line]
        return tuple(targets)

    def _continues(self, line: int) -> bool:
        return line not in self.comments and self.contents[line - 1].endswith("\\")

    def target(self, line: int) -> int:
        """The line where a comment for a finding reported at ``line`` goes."""
        if self.tokenized and 1 <= line <= len(self.contents):
            return self.targets[line - 1]
        return line

    def comment_text(self, line: int) -> str | None:
        """The comment on a line. When the file does not tokenize, the whole
        line stands in for it, as a conservative fallback for reading."""
        if self.tokenized:
            comment = self.comments.get(line)
            return comment.text if comment is not None else None
        if 1 <= line <= len(self.contents) and "#" in self.contents[line - 1]:
            return self.contents[line - 1]
        return None

    def file_directives(self) -> list[tuple[int, frozenset[str] | None]]:
        """``# slotguard: noqa`` comments on lines of their own: (line, codes)."""
        found = []
        if self.tokenized:
            for comment in self.comments.values():
                standalone = not self.contents[comment.line - 1][: comment.offset].strip()
                match = FILE_NOQA.match(comment.text)
                if standalone and match is not None:
                    found.append((comment.line, parse_codes(match.group("codes"))))
        else:
            for number, content in enumerate(self.contents, 1):
                match = FILE_NOQA.match(content)
                if match is not None:
                    found.append((number, parse_codes(match.group("codes"))))
        return found


@lru_cache(maxsize=1)
def _layout_of(text: str) -> Layout:
    """The layout of the file checked last: what its comments suppress and
    which of them suppress nothing are both read from it, and tokenizing
    the file is most of the cost of either."""
    return Layout(text)


@dataclass(frozen=True, slots=True)
class Suppressions:
    """What the comments of one file suppress."""

    layout: Layout | None
    """None when the file has no noqa comment at all (the common case: no
    tokenizing needed)."""
    file_codes: tuple[frozenset[str] | None, ...]

    @classmethod
    def of(cls, text: str) -> Suppressions:
        if not _ANY_NOQA.search(text):
            return cls(None, ())
        layout = _layout_of(text)
        return cls(layout, tuple(codes for _, codes in layout.file_directives()))

    def suppresses(self, code: str, line: int) -> bool:
        if self.layout is None:
            return False
        if any(_covers(codes, code) for codes in self.file_codes):
            return True
        comment = self.layout.comment_text(self.layout.target(line))
        if comment is None:
            return False
        return any(
            _covers(parse_codes(match.group("codes")), code)
            for match in LINE_NOQA.finditer(comment)
        )


@dataclass(frozen=True, slots=True)
class AddedNoqa:
    """What ``add_noqa`` did to one file."""

    text: str
    """The new text (the old one when nothing changed)."""
    lines: int
    """How many lines got a new comment or new codes in an existing one."""
    unplaced: tuple[Diagnostic, ...]
    """Findings no comment was written for: the file does not tokenize, so
    where a comment may go is unknown and the file is left as it was."""


def add_noqa(text: str, diagnostics: Iterable[Diagnostic]) -> AddedNoqa:
    """``text`` with ``# noqa: CODE`` on each line where ``diagnostics`` (the
    findings of this file) are reported, so that checking it again reports
    none of them.

    - A line that ends inside a multi-line string or continues with a
      backslash gets the comment where the string or continuation ends.
    - Codes join an existing ``# noqa: X`` comment (other tools' codes are
      kept, codes already covered are not repeated); a bare ``# noqa``
      already covers everything and is left alone; any other comment is
      kept and the noqa comment follows it.
    - Line endings (LF, CRLF) are kept; only the annotated lines change.
    - SG000 findings are skipped: the file did not parse, no comment helps.
    """
    wanted = [d for d in diagnostics if d.code != _ANALYSIS_ERROR]
    if not wanted:
        return AddedNoqa(text, 0, ())
    layout = Layout(text)
    if not layout.tokenized:
        return AddedNoqa(text, 0, tuple(wanted))
    codes_by_line: dict[int, set[str]] = defaultdict(set)
    for diagnostic in wanted:
        if 1 <= diagnostic.line <= len(layout):
            codes_by_line[layout.target(diagnostic.line)].add(diagnostic.code)
    contents = list(layout.contents)
    changed = 0
    for line, codes in codes_by_line.items():
        updated = _annotated(contents[line - 1], layout.comments.get(line), codes)
        if updated != contents[line - 1]:
            contents[line - 1] = updated
            changed += 1
    if not changed:
        return AddedNoqa(text, 0, ())
    new_text = "".join(c + e for c, e in zip(contents, layout.endings, strict=True))
    return AddedNoqa(new_text, changed, ())


def _annotated(content: str, comment: Comment | None, codes: set[str]) -> str:
    if comment is None:
        return f"{content.rstrip()}  # noqa: {', '.join(sorted(codes))}"
    directives = list(LINE_NOQA.finditer(comment.text))
    existing: list[str] = []
    for directive in directives:
        listed = directive.group("codes")
        if listed is None:
            return content
        existing.extend(_ordered_codes(listed))
    missing = sorted(code for code in codes if not _covers(existing, code))
    if not missing:
        return content
    if not directives:
        return f"{content.rstrip()}  # noqa: {', '.join(missing)}"
    end = comment.offset + directives[-1].end("codes")
    return f"{content[:end]}, {', '.join(missing)}{content[end:]}"


@dataclass(frozen=True, slots=True)
class UnusedNoqa:
    """A ``noqa`` comment naming slotguard codes that suppress nothing."""

    path: str
    line: int
    column: int
    """1-based column of the comment's ``#``."""
    codes: tuple[str, ...]
    """The unused codes; empty for a bare ``# slotguard: noqa`` in a file with
    no finding at all."""
    whole_file: bool

    @property
    def message(self) -> str:
        if not self.codes:
            return "unused `# slotguard: noqa`: the file has no finding to suppress; remove it"
        listed = ", ".join(self.codes)
        noun = "code" if len(self.codes) == 1 else "codes"
        where = "in this file" if self.whole_file else "on this line"
        return f"unused noqa {noun} {listed}: nothing {where} is reported as {listed}; remove it"


def unused_noqa(
    text: str,
    path: str,
    unsuppressed: Iterable[Diagnostic],
    *,
    selected: Collection[str] | None = None,
) -> list[UnusedNoqa]:
    """The slotguard codes in this file's noqa comments that suppress nothing.

    ``unsuppressed`` are the file's findings as they would be without any
    noqa comment (see ``without_noqa``). A code is used when a finding it
    covers (``SG2`` covers ``SG201``) is reported on a line the comment
    applies to. Other tools' codes and bare ``# noqa`` are never reported.
    With ``selected`` (the codes that ran on this file), a code naming only
    rules that did not run is not reported: nothing could have used it. A
    code naming no rule at all is always reported.
    """
    from slotguard.selection import all_codes

    if not _ANY_NOQA.search(text):
        return []
    layout = _layout_of(text)
    findings = [d for d in unsuppressed if d.code != _ANALYSIS_ERROR]
    on_line: Mapping[int, set[str]] = _codes_by_target(layout, findings)
    everywhere = {d.code for d in findings}
    known = all_codes()

    def unused(candidates: Iterable[str], reported: set[str]) -> tuple[str, ...]:
        result = []
        for code in candidates:
            if not code.startswith(_OWN_PREFIX):
                continue
            ruled = [c for c in known if c.startswith(code)]
            if ruled and selected is not None and not any(c in selected for c in ruled):
                continue
            if not any(c.startswith(code) for c in reported):
                result.append(code)
        return tuple(dict.fromkeys(result))

    found = []
    for line, codes in layout.file_directives():
        column = _comment_column(layout, line)
        if codes is None:
            if not everywhere:
                found.append(UnusedNoqa(path, line, column, (), whole_file=True))
            continue
        extra = unused(sorted(codes), everywhere)
        if extra:
            found.append(UnusedNoqa(path, line, column, extra, whole_file=True))
    for line in range(1, len(layout) + 1):
        comment = layout.comment_text(line)
        if comment is None:
            continue
        listed = [
            code
            for match in LINE_NOQA.finditer(comment)
            if match.group("codes") is not None
            for code in _ordered_codes(match.group("codes"))
        ]
        # A code covering SG001 is used when the line's other unused codes
        # would be reported: the comment then suppresses that very finding.
        own = [code for code in listed if _UNUSED_NOQA.startswith(code)]
        extra = unused([code for code in listed if code not in own], on_line.get(line, set()))
        if not extra:
            extra = unused(own, on_line.get(line, set()))
        elif own:
            continue
        if extra:
            found.append(UnusedNoqa(path, line, _comment_column(layout, line), extra, False))
    return found


def _codes_by_target(layout: Layout, findings: Iterable[Diagnostic]) -> dict[int, set[str]]:
    codes: dict[int, set[str]] = defaultdict(set)
    for finding in findings:
        codes[layout.target(finding.line)].add(finding.code)
    return codes


def _comment_column(layout: Layout, line: int) -> int:
    comment = layout.comments.get(line)
    if comment is not None:
        return comment.offset + 1
    return layout.contents[line - 1].find("#") + 1


def without_noqa(text: str) -> str:
    """``text`` with every noqa comment removed, lines and code positions
    unchanged: checking it gives the findings ``unused_noqa`` needs.

    A file that does not tokenize comes back unchanged (its comments cannot
    be told from strings).
    """
    if not _ANY_NOQA.search(text):
        return text
    layout = Layout(text)
    if not layout.tokenized:
        return text
    contents = list(layout.contents)
    for comment in layout.comments.values():
        if LINE_NOQA.search(comment.text) or FILE_NOQA.match(comment.text):
            contents[comment.line - 1] = contents[comment.line - 1][: comment.offset].rstrip()
    return "".join(c + e for c, e in zip(contents, layout.endings, strict=True))

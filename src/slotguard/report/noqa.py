"""``# noqa`` comments: on a reported line, or ``# slotguard: noqa`` for a file."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CODE_LIST = r"[A-Za-z]+[0-9]*(?:[\s,]+[A-Za-z]+[0-9]+)*"
LINE_NOQA = re.compile(rf"#\s*noqa(?::\s*(?P<codes>{_CODE_LIST}))?", re.IGNORECASE)
FILE_NOQA = re.compile(
    rf"^[ \t]*#[ \t]*slotguard:[ \t]*noqa(?::[ \t]*(?P<codes>{_CODE_LIST}))?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_codes(text: str | None) -> frozenset[str] | None:
    """The codes of a noqa comment; None means all codes."""
    if not text:
        return None
    return frozenset(code.upper() for code in re.split(r"[\s,]+", text) if code)


def _covers(codes: frozenset[str] | None, code: str) -> bool:
    return codes is None or any(code.startswith(c) for c in codes)


@dataclass(frozen=True, slots=True)
class Suppressions:
    """What the comments of one file suppress."""

    lines: tuple[str, ...]
    file_codes: tuple[frozenset[str] | None, ...]

    @classmethod
    def of(cls, text: str) -> Suppressions:
        file_codes = tuple(parse_codes(match.group("codes")) for match in FILE_NOQA.finditer(text))
        return cls(tuple(text.splitlines()), file_codes)

    def suppresses(self, code: str, line: int) -> bool:
        if any(_covers(codes, code) for codes in self.file_codes):
            return True
        if not 1 <= line <= len(self.lines):
            return False
        source_line = self.lines[line - 1]
        if "#" not in source_line:
            return False
        for match in LINE_NOQA.finditer(source_line):
            if _covers(parse_codes(match.group("codes")), code):
                return True
        return False

"""The engine's places as the client counts them, and back.

The engine counts lines from 1, split on ``\\n``, and columns from 1 in code
points, with exclusive ends (``slotguard.diagnostic.Span``). The Language
Server Protocol counts both from 0, and columns in the code units of the
position encoding agreed at initialisation: UTF-16 unless the client offers
UTF-8 or UTF-32. ``x = "😋"; conn`` puts ``conn`` at code point 9, UTF-16
unit 10 and UTF-8 byte 12.

No LSP types here: positions are plain ``(line, character)`` pairs, 0-based,
so that the arithmetic is tested on its own.
"""

from __future__ import annotations

from collections.abc import Callable

from slotguard.diagnostic import Span

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"

Position = tuple[int, int]
"""0-based line and character, in the client's code units."""


def _utf16_units(text: str) -> int:
    return len(text) + sum(1 for character in text if ord(character) > 0xFFFF)


def _utf8_units(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


_UNITS: dict[str, Callable[[str], int]] = {UTF8: _utf8_units, UTF16: _utf16_units, UTF32: len}


class Lines:
    """One version of a buffer's text, for converting places in it."""

    def __init__(self, text: str, encoding: str = UTF16) -> None:
        self.lines = text.split("\n")
        self._units = _UNITS.get(encoding, _utf16_units)

    def position(self, line: int, column: int) -> Position:
        """The client position of the engine's ``line``:``column``, clamped
        to the text (a place past the end of a line is its end; a line past
        the last, the end of the text)."""
        if line < 1:
            return 0, 0
        if line > len(self.lines):
            return len(self.lines) - 1, self._units(self.lines[-1])
        text = self.lines[line - 1]
        return line - 1, self._units(text[: max(0, column - 1)])

    def range(self, span: Span) -> tuple[Position, Position]:
        return self.position(span.line, span.column), self.position(span.end_line, span.end_column)

    def place(self, position: Position) -> tuple[int, int]:
        """The engine's line and column of a client position. A position
        inside a character (half of a surrogate pair, a byte of a UTF-8
        sequence) is that character's; past the end of a line, its end."""
        line, character = position
        if line < 0:
            return 1, 1
        if line >= len(self.lines):
            return len(self.lines), len(self.lines[-1]) + 1
        text = self.lines[line]
        units = 0
        for index, code_point in enumerate(text):
            if units >= character:
                return line + 1, index + 1
            units += self._units(code_point)
            if units > character:
                return line + 1, index + 1
        return line + 1, len(text) + 1


def contains(span: Span, line: int, column: int) -> bool:
    """Whether the engine's place ``line``:``column`` is in ``span``, its end
    included (a cursor just after a name is still on it), and an empty span
    holding its own place."""
    place = (line, column)
    return (span.line, span.column) <= place <= (span.end_line, span.end_column)


def overlaps(span: Span, start: tuple[int, int], end: tuple[int, int]) -> bool:
    """Whether ``span`` touches the engine's range ``start``..``end``."""
    return (span.line, span.column) <= end and start <= (span.end_line, span.end_column)

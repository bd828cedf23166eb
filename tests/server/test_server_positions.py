"""The engine's places (1-based, code points) as LSP positions (0-based, in
the agreed encoding's code units), and back."""

from __future__ import annotations

import pytest

from slotguard.diagnostic import Span
from slotguard.server.positions import UTF8, UTF16, UTF32, Lines, contains, overlaps

EMOJI_LINE = 'x = "😋"; conn = 1\n'
"""``conn`` starts at code point 9 (0-based), after a character outside the
Basic Multilingual Plane."""


@pytest.mark.parametrize(("encoding", "character"), [(UTF32, 9), (UTF16, 10), (UTF8, 12)])
def test_a_column_after_an_astral_character_counts_in_the_clients_units(
    encoding: str, character: int
) -> None:
    lines = Lines(EMOJI_LINE, encoding)
    assert lines.position(1, 10) == (0, character)
    assert lines.place((0, character)) == (1, 10)


def test_a_position_inside_a_character_is_that_character() -> None:
    lines = Lines(EMOJI_LINE, UTF16)
    # Between the two halves of the surrogate pair of the emoji (code point 5).
    assert lines.place((0, 6)) == (1, 6)


def test_places_past_the_text_are_clamped() -> None:
    lines = Lines("a = 1\nb = 2\n", UTF16)
    assert lines.position(1, 99) == (0, 5)
    assert lines.position(9, 1) == (2, 0)
    assert lines.place((0, 99)) == (1, 6)
    assert lines.place((9, 0)) == (3, 1)
    assert lines.place((-1, 0)) == (1, 1)


def test_crlf_line_endings_keep_their_columns() -> None:
    lines = Lines("a = 1\r\nconn = pool.getconn()\r\n", UTF16)
    assert lines.range(Span(2, 8, 2, 22)) == ((1, 7), (1, 21))


def test_a_span_contains_its_end_and_an_empty_span_its_place() -> None:
    span = Span(3, 5, 3, 9)
    assert contains(span, 3, 5)
    assert contains(span, 3, 9)
    assert not contains(span, 3, 10)
    assert not contains(span, 2, 7)
    assert contains(Span(4, 1, 4, 1), 4, 1)


def test_overlap_of_a_span_and_a_cursor_range() -> None:
    span = Span(3, 5, 4, 2)
    assert overlaps(span, (3, 1), (3, 5))
    assert overlaps(span, (4, 1), (4, 1))
    assert not overlaps(span, (4, 3), (5, 1))

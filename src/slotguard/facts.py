"""What a rule notes in a module for its whole-run check (``Rule.check_run``).

Facts are cached with each file's results, so this module stays light:
reading a fact back must not import libcst, or a warm run would pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from slotguard.diagnostic import Span


@dataclass(frozen=True, slots=True)
class Fact:
    """Something a rule noted in a module, for its whole-run check: a topic,
    plain data, and where it was noted."""

    code: str
    topic: str
    value: tuple[object, ...]
    path: str
    span: Span
    suppressed: bool
    """The line has a noqa comment for the rule's code."""

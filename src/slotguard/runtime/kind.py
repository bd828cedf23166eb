"""What a hook takes: the values every checkout of one hook shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

IsClosed = Callable[[Any], bool]
"""Whether a direct connection is closed (asked lazily, when the tracker is read)."""


@dataclass(frozen=True, slots=True)
class Kind:
    """What a hook takes, made once per hook: every checkout of it shares this."""

    library: str
    what: str
    pooled: bool = True
    is_closed: IsClosed | None = None
    """For a direct connection: how to ask whether it was closed since."""

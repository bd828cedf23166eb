"""Replace an attribute of a class or module, and put it back exactly as it was."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from typing import Any

from slotguard.runtime.errors import internal_error, logger

__all__ = ["Patch", "apply_all", "internal_error", "load", "mark_coroutine_function"]

_MISSING = object()


class Patch:
    """One attribute replaced on ``owner``; :meth:`apply` returns the undo.

    Only an attribute the owner defines itself is replaced (an inherited one is
    patched on the class that defines it), so that undoing restores the very
    object that was there. If someone replaced it again after us, undoing
    leaves theirs in place: our replacement is inert once no tracker runs.
    """

    def __init__(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        self.owner = owner
        self.name = name
        self.original = vars(owner).get(name, _MISSING)
        if self.original is _MISSING:
            raise LookupError(f"{owner!r} defines no {name!r}")
        self.replacement = make(self.original)

    def apply(self) -> Callable[[], None]:
        setattr(self.owner, self.name, self.replacement)
        return self.restore

    def restore(self) -> None:
        if vars(self.owner).get(self.name, _MISSING) is self.replacement:
            setattr(self.owner, self.name, self.original)


def apply_all(library: str, patches: Callable[[], list[Patch]]) -> list[Callable[[], None]]:
    """Build every patch first, then apply them: a library whose shape is not the
    one expected is left untouched (and said so), never half patched."""
    try:
        built = patches()
    except Exception as error:  # a version whose internals moved
        logger.warning("slotguard.runtime: %s is not tracked: %s", library, error)
        return []
    return [patch.apply() for patch in built]


def load(name: str) -> Any | None:
    """The module, when it is installed and imports; None otherwise."""
    try:
        if importlib.util.find_spec(name) is None:
            return None
        return importlib.import_module(name)
    except Exception:  # installed but broken (psycopg without libpq, ...)
        return None


def mark_coroutine_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """Keep ``inspect.iscoroutinefunction`` true for a replacement that returns a
    coroutine (Python 3.12+; earlier versions have no way to say it)."""
    mark = getattr(inspect, "markcoroutinefunction", None)
    return mark(function) if mark is not None else function

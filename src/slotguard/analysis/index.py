"""What a module tells the rest of the project, as plain data: its typed names and helpers.

``app/db.py`` defines ``SessionLocal = sessionmaker(...)`` and a ``get_db``
dependency; ``app/routes.py`` imports both. The routes can only be checked
if slotguard knows, there, what those names are. Each analysed module leaves a
``ModuleSummary`` of the names it defines (or re-exports) whose meaning the
model knows; modules that import them see them through a ``ProjectIndex``.

Summaries are plain data (type *names*, not types) so that they can be cached
and sent to worker processes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class SymbolKind(str, enum.Enum):
    VALUE = "value"
    """A module-level name holding a value of a known type (an engine, a factory)."""
    ACQUIRER = "acquirer"
    """A function that acquires something and returns it to its caller."""
    PROVIDER = "provider"
    """A generator that yields a resource (a dependency such as ``get_db``)."""
    RELEASER = "releaser"
    """A function that releases the resource passed as one of its arguments."""
    CLASS = "class"
    """A class of the project (its methods are ``Class.name`` symbols)."""
    INSTANCE = "instance"
    """A module-level name holding an instance of a project class, whose
    qualified name is ``type_name``."""
    FUNCTION = "function"
    """Any other function, class (``Name``) or method (``Class.name``): what
    matters of it is whether calling it can raise (``raises``)."""
    COLUMN = "column"
    """A column attribute of a mapped class (``Class.name``): what an instance
    loaded by a session gives for it is plain data, not an ORM object that a
    closed session would detach (``slotguard.analysis.columns``)."""


NONE_SHAPE = "none"
FALSY_SHAPE = "falsy"
TUPLE_SHAPE = "tuple"
OTHER_SHAPE = "other"
OTHER_SHAPES = (NONE_SHAPE, FALSY_SHAPE, TUPLE_SHAPE, OTHER_SHAPE)
"""What an acquiring function may return instead of the resource: ``None``
(also a bare ``return``), another false constant (``False``, ``0``, ``""``,
an empty literal), a tuple (``return conn, cur``), or anything else."""


@dataclass(frozen=True, slots=True)
class Symbol:
    kind: SymbolKind
    type_name: str | None = None
    awaited: bool = False
    """For acquirers: ``async def``, so the resource exists once awaited."""
    parameter: int = 0
    """For releasers: the position of the argument they release."""
    element: int | None = None
    """For acquirers that return a tuple: the resource's position in it."""
    raises: bool = False
    """For functions: calling it can realistically raise (it does I/O, a
    database call, an ``await`` or an explicit ``raise``; see
    ``slotguard.analysis.raising``)."""
    slow: str | None = None
    """For functions and methods: the slow external call it makes, itself or
    through functions it calls, as a message names it ("an LLM call"); with
    ``awaited``, only once awaited (SG4 in the modules that call it)."""
    mixed: frozenset[str] = frozenset()
    """For acquirers: the shapes of what some ``return`` gives back instead
    of the resource (``None``, a tuple; ``OTHER_SHAPES``), so a caller
    cannot rely on holding it before a test excludes them."""


@dataclass(frozen=True, slots=True)
class ModuleSummary:
    module: str
    symbols: tuple[tuple[str, Symbol], ...] = ()
    state: tuple[tuple[str, str], ...] = ()
    """``app.state.<name>`` assignments: name → type name."""
    facts: tuple[tuple[str, tuple[object, ...]], ...] = field(default=())
    """Whole-run facts for run-level rules, by topic (SG5's pools and closes)."""


class ProjectIndex:
    """The summaries a module can see: qualified name → symbol, and the
    application state typed anywhere in the project."""

    def __init__(
        self,
        symbols: Mapping[str, Symbol] | None = None,
        state: Mapping[str, str] | None = None,
    ) -> None:
        self._symbols = dict(symbols or {})
        self._state = dict(state or {})

    @classmethod
    def of(cls, summaries: Iterable[ModuleSummary]) -> ProjectIndex:
        symbols: dict[str, Symbol] = {}
        state: dict[str, str] = {}
        for summary in summaries:
            for name, symbol in summary.symbols:
                symbols[f"{summary.module}.{name}"] = symbol
            for name, type_name in summary.state:
                state.setdefault(name, type_name)
        return cls(symbols, state)

    def symbol(self, qualified: str) -> Symbol | None:
        return self._symbols.get(qualified)

    def state_type(self, name: str) -> str | None:
        return self._state.get(name)

    def has_state(self) -> bool:
        return bool(self._state)

    def names(self) -> set[str]:
        """The short names of the symbols that can make a finding where they
        are used: what a module must mention to use one. (A function that
        only raises changes findings in modules that acquire something, which
        the prefilter lets through anyway.)"""
        return {
            qualified.rsplit(".", 1)[-1]
            for qualified, symbol in self._symbols.items()
            if symbol.kind not in (SymbolKind.FUNCTION, SymbolKind.COLUMN)
        }

    def __bool__(self) -> bool:
        return bool(self._symbols or self._state)


EMPTY_INDEX = ProjectIndex()

"""What one file sees of its project, and what its analysis asked of it.

A module is analysed with the summaries of the modules it imports and the
application state typed in the project (``slotguard.analysis.index``). A
``View`` serves those questions (``symbol``, ``state_type``, ``names``,
``has_state``, truth) and records each with its answer: the ``Footprint`` of
the analysis. The analysis is a function of the file's text and of those
answers only, so a result stays valid, in this run or a later one, for as
long as the same questions get the same answers (``View.answers``), however
much else changed in the modules it imports. The engine re-analyses a module
of an import cycle, and the cache gives back a file's results, on that test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from slotguard.analysis.index import ModuleSummary, ProjectIndex, Symbol, SymbolKind


@dataclass(frozen=True, slots=True)
class Footprint:
    """The questions an analysis asked of the project, with their answers."""

    symbols: tuple[tuple[str, Symbol | None], ...] = ()
    states: tuple[tuple[str, str | None], ...] = ()
    names: str | None = None
    """A digest of what ``names()`` answered, if it was asked (the answer is
    often long, and only its being the same matters)."""
    has_state: bool | None = None
    truthy: bool | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """One imported module's summary, as the view looks it up."""

    symbols: Mapping[str, Symbol]
    names: frozenset[str]
    """The short names of its symbols that can make a finding where they are
    used: not a function that only may raise, nor a class whose methods only
    may raise (its methods are ``Class.name`` symbols); an instance of a
    class counts where its class does (``classes``, ``instances``)."""
    classes: frozenset[str]
    """The qualified names of its classes that have such a method."""
    instances: tuple[tuple[str, str], ...]
    """Its module-level instances of project classes: name, qualified class."""

    @classmethod
    def of(cls, summary: ModuleSummary) -> Table:
        meaningful = {name for name, symbol in summary.symbols if _meaningful(symbol)}
        classes = {name.split(".", 1)[0] for name in meaningful if "." in name}
        names = {name.rsplit(".", 1)[-1] for name in meaningful}
        names |= {
            name
            for name, symbol in summary.symbols
            if symbol.kind is SymbolKind.CLASS and name in classes
        }
        instances = tuple(
            (name, symbol.type_name)
            for name, symbol in summary.symbols
            if symbol.kind is SymbolKind.INSTANCE and symbol.type_name is not None
        )
        return cls(
            dict(summary.symbols),
            frozenset(names),
            frozenset(f"{summary.module}.{name}" for name in classes),
            instances,
        )


def _digest(names: frozenset[str]) -> str:
    return hashlib.blake2b("\n".join(sorted(names)).encode(), digest_size=12).hexdigest()


def _meaningful(symbol: Symbol) -> bool:
    """Whether using the symbol can give a name a type by itself, not only a
    call that may raise. Classes and instances depend on their methods
    (``Table``); kinds added later count until said otherwise."""
    return symbol.kind not in (
        SymbolKind.FUNCTION,
        SymbolKind.CLASS,
        SymbolKind.INSTANCE,
        SymbolKind.COLUMN,
    )


class View(ProjectIndex):
    """The project as one module sees it: the summaries of the modules it
    imports (by module name) and the application state; every question is
    recorded. Plain data, so that it travels to a worker process."""

    def __init__(
        self, tables: Mapping[str, Table] | None = None, state: Mapping[str, str] | None = None
    ) -> None:
        super().__init__()
        self._tables = dict(tables or {})
        self._state_types = dict(state or {})
        self._asked_symbols: dict[str, Symbol | None] = {}
        self._asked_states: dict[str, str | None] = {}
        self._asked_names: frozenset[str] | None = None
        self._names: frozenset[str] | None = None
        self._asked_has_state: bool | None = None
        self._asked_truthy: bool | None = None

    # -- the questions ----------------------------------------------------------

    def symbol(self, qualified: str) -> Symbol | None:
        asked = self._asked_symbols
        if qualified in asked:
            return asked[qualified]
        found = self._look_up(qualified)
        asked[qualified] = found
        return found

    def state_type(self, name: str) -> str | None:
        asked = self._asked_states
        if name not in asked:
            asked[name] = self._state_types.get(name)
        return asked[name]

    def has_state(self) -> bool:
        if self._asked_has_state is None:
            self._asked_has_state = bool(self._state_types)
        return self._asked_has_state

    def names(self) -> set[str]:
        """Unlike ``ProjectIndex.names``, not the classes whose methods only
        may raise, nor their instances: the prefilter stops a file that only
        uses those, as it stops one that only calls a function that may raise."""
        if self._asked_names is None:
            self._asked_names = self._all_names()
        return set(self._asked_names)

    def __bool__(self) -> bool:
        if self._asked_truthy is None:
            self._asked_truthy = self._truthy()
        return self._asked_truthy

    # -- answers, recorded or not -----------------------------------------------

    def _look_up(self, qualified: str) -> Symbol | None:
        """The symbol of the longest imported module that ``qualified``
        starts with and that defines the rest (``app.db.Session.begin``:
        ``Session.begin`` in ``app.db``)."""
        end = len(qualified)
        while True:
            end = qualified.rfind(".", 0, end)
            if end <= 0:
                return None
            table = self._tables.get(qualified[:end])
            if table is not None:
                found = table.symbols.get(qualified[end + 1 :])
                if found is not None:
                    return found

    def _all_names(self) -> frozenset[str]:
        """An instance counts where its class has a method that means more
        than "may raise" in a module this view holds: the analysis looks its
        methods up in the view (``Class.method``), nowhere else."""
        if self._names is None:
            tables = self._tables.values()
            classes = {name for table in tables for name in table.classes}
            self._names = frozenset(
                {name for table in tables for name in table.names}
                | {
                    name
                    for table in tables
                    for name, class_name in table.instances
                    if class_name in classes
                }
            )
        return self._names

    def _truthy(self) -> bool:
        return bool(self._state_types) or any(table.symbols for table in self._tables.values())

    def footprint(self) -> Footprint:
        return Footprint(
            symbols=tuple(sorted(self._asked_symbols.items())),
            states=tuple(sorted(self._asked_states.items())),
            names=None if self._asked_names is None else _digest(self._asked_names),
            has_state=self._asked_has_state,
            truthy=self._asked_truthy,
        )

    def answers(self, footprint: Footprint) -> bool:
        """Whether this view gives every recorded question its recorded answer
        (without recording anything)."""
        if footprint.truthy is not None and footprint.truthy != self._truthy():
            return False
        if footprint.has_state is not None and footprint.has_state != bool(self._state_types):
            return False
        if footprint.names is not None and footprint.names != _digest(self._all_names()):
            return False
        states = self._state_types
        if any(states.get(name) != answer for name, answer in footprint.states):
            return False
        return all(self._look_up(name) == answer for name, answer in footprint.symbols)

    def fresh(self) -> View:
        """The same view with nothing recorded."""
        return View(self._tables, self._state_types)

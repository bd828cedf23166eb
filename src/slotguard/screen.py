"""The screen: can a file the prefilter lets through give the analysis anything?

The prefilter (``slotguard.prefilter``) reads bytes: a file that imports
``sqlalchemy`` only to declare columns passes it. The screen reads the ``ast``
tree that the syntax check builds anyway (``slotguard.parse.check_syntax``)
and asks the same question the analysis would, in the places the analysis
looks: a file none of these applies to cannot produce a finding, a fact, a
settled key, application state, or a symbol other than "this function may
raise", so it is not parsed with libcst until another file needs its summary
(``slotguard.engine``):

- a dotted name (or one written in a string, as annotations may be) that
  means, through the file's imports or as one of its own definitions, a name
  the model knows (``sqlalchemy.orm.Session``, ``asyncpg.create_pool``) or a
  pool constructor whose size it reads;
- an identifier that names a symbol another module of the project exports
  with a meaning (a factory, an acquiring or releasing helper, a dependency),
  a configured wrapper, or application state the project types
  (``request.app.state.pool``, aiohttp's ``request.app["pool"]``);
- a dependency marker called (``Depends(...)``);
- what the pool lifecycle reads without types (SG501): a release method
  called on something kept (``self.pool.close()``), a ``with`` over a kept
  value, an exit stack's ``enter_context``, ``closing(...)``, a function the
  model says releases its argument, and any word of the hook vocabulary
  (``on_event``, ``lifespan``, ``atexit``...);
- a function that releases or hands back one of its parameters
  (``def cleanup(conn): conn.close()``: a releasing helper for its importers).

A module-level instance of a project class (``db = Database()``) is a
symbol of its module; it means something to an importer only if the class
has a method that does, which needs one of the above (an acquisition, a
release) or the class's name among the project's names.

Each test is wider than the analysis it stands for; whether together they
are wide enough is what ``tests/test_screen.py`` checks, by comparing a
screened run with one that analyses every file (``SLOTGUARD_SCREEN=off``)
over every fixture and over real trees.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache

from slotguard.analysis.index import EMPTY_INDEX, ProjectIndex
from slotguard.model import Model
from slotguard.model.catalog import DEPENDENCY_MARKERS
from slotguard.model.lifecycle import (
    APPLICATION_MAPPINGS,
    APPLICATION_STATE,
    HOOK_LISTS,
    HOOK_METHODS,
    POOL_SIZES,
    POOL_TIMEOUTS,
    PROCESS_HOOKS,
)

_CLOSING_CALLS = frozenset({"enter_context", "enter_async_context", "closing", "aclosing"})
"""Calls through which the pool lifecycle sees a value closed:
``stack.enter_async_context(pool)``, ``closing(pool)``."""
_KEEPING_CALLS = frozenset({"cast", "getattr"})
"""Calls through which it sees where a value is kept: ``cast(T, app.state.x)``,
``getattr(app.state, "x")``."""

_TYPE_TEXT = re.compile(r"[\w.\[\], |'\"]{1,300}")
"""A string that may be an annotation (``"Session"``, ``"Optional[AsyncSession]"``):
docstrings and messages have other characters."""
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What the screen looks for, from the model (computed once per model)."""

    names: frozenset[str]
    """Qualified names that give a value a type or make a pool."""
    prefixes: frozenset[str]
    """Those names and the modules on the way to them (for ``import *``)."""
    words: frozenset[str]
    """Identifiers that matter wherever they are written."""
    release_methods: frozenset[str]
    returning_methods: frozenset[str]


@cache
def vocabulary(model: Model) -> Vocabulary:
    names = set(model.qualified_names())
    for sizing in POOL_SIZES:
        names.update(sizing.constructors)
        for pool_class in sizing.classes:
            names.update(pool_class.names)
    for timeout in POOL_TIMEOUTS:
        names.update(timeout.constructors)
    names.update(PROCESS_HOOKS)
    prefixes: set[str] = set()
    for name in names:
        parts = name.split(".")
        prefixes.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    words = {
        *DEPENDENCY_MARKERS,
        *model.name_triggers(),
        *(method.name for method in HOOK_METHODS),
        *HOOK_LISTS,
        *(name.split(".", 1)[0] for name in PROCESS_HOOKS),
        *(name.rsplit(".", 1)[-1] for name in model.catalog.releasing_functions),
        *_CLOSING_CALLS,
    }
    types = list(model.types())
    return Vocabulary(
        names=frozenset(names),
        prefixes=frozenset(prefixes),
        words=frozenset(words),
        release_methods=frozenset(m for t in types for m in t.release_methods),
        returning_methods=frozenset(m for t in types for m in t.returned_by),
    )


def may_produce(
    tree: ast.Module,
    model: Model,
    module: str | None,
    *,
    is_package: bool = False,
    index: ProjectIndex = EMPTY_INDEX,
) -> bool:
    """Whether the analysis of this module could produce anything beyond
    whether its functions raise; ``index`` is what the module sees of the
    project."""
    return _Screen(tree, vocabulary(model), module, is_package, index).finds()


class _Screen:
    def __init__(
        self,
        tree: ast.Module,
        words: Vocabulary,
        module: str | None,
        is_package: bool,
        index: ProjectIndex,
    ) -> None:
        self.tree = tree
        self.vocabulary = words
        self.module = module
        self.is_package = is_package
        self.words = words.words | index.names()
        self.index = index
        self.aliases: dict[str, str] = {}
        self.definitions: set[str] = set()

    def finds(self) -> bool:
        """One walk: what needs no import to judge is judged on the way; the
        dotted names are judged at the end, once every import is known
        (imports inside functions count for the whole module, as for the
        analysis)."""
        for statement in self.tree.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.definitions.add(statement.name)
        dotted: set[str] = set()
        for node in ast.walk(self.tree):
            kind = type(node)
            if kind is ast.Name:
                assert isinstance(node, ast.Name)
                if node.id in self.words:
                    return True
                dotted.add(node.id)
            elif kind is ast.Attribute:
                assert isinstance(node, ast.Attribute)
                if self._attribute(node):
                    return True
                chain = _dotted(node)
                if chain is not None:
                    dotted.add(chain)
            elif kind is ast.Import or kind is ast.ImportFrom:
                assert isinstance(node, ast.Import | ast.ImportFrom)
                if self._import(node):
                    return True
            elif self._finds(node):
                return True
        return any(self._means_the_model(name) for name in dotted)

    # -- imports --------------------------------------------------------------

    def _import(self, node: ast.Import | ast.ImportFrom) -> bool:
        """Record what the import binds; whether it makes the file a candidate
        by itself (a star import from a module on the way to the model's
        names, or a name the project exports)."""
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is not None:
                    self.aliases[alias.asname] = alias.name
                else:
                    head = alias.name.split(".", 1)[0]
                    self.aliases.setdefault(head, head)
            return False
        base = self._from_base(node)
        for alias in node.names:
            if alias.name in self.words or (alias.asname or "") in self.words:
                return True
            if base is None:
                continue
            if alias.name == "*":
                if base in self.vocabulary.prefixes:
                    return True
                continue
            self.aliases[alias.asname or alias.name] = (
                f"{base}.{alias.name}" if base else alias.name
            )
        return False

    def _from_base(self, node: ast.ImportFrom) -> str | None:
        module = node.module or ""
        if not node.level:
            return module
        if self.module is None:
            return None
        package = self.module.split(".")
        drop = node.level - 1 if self.is_package else node.level
        if drop > len(package) or (drop == len(package) and not module):
            return None
        anchor = package[: len(package) - drop] if drop else package
        return ".".join([*anchor, module] if module else anchor)

    def _qualified(self, dotted: str) -> str | None:
        head, sep, rest = dotted.partition(".")
        target = self.aliases.get(head)
        if target is not None:
            return f"{target}{sep}{rest}"
        if head in self.definitions and self.module:
            return f"{self.module}.{dotted}"
        return None

    def _means_the_model(self, dotted: str) -> bool:
        qualified = self._qualified(dotted)
        return qualified is not None and qualified in self.vocabulary.names

    # -- every node -----------------------------------------------------------

    def _finds(self, node: ast.AST) -> bool:
        kind = type(node)
        if kind is ast.Call:
            assert isinstance(node, ast.Call)
            return self._call(node)
        if kind is ast.withitem:
            assert isinstance(node, ast.withitem)
            return _kept(node.context_expr)
        if kind is ast.keyword:
            assert isinstance(node, ast.keyword)
            return node.arg is not None and node.arg in self.words
        if kind is ast.Constant:
            assert isinstance(node, ast.Constant)
            return isinstance(node.value, str) and self._string(node.value)
        if kind is ast.Subscript:
            assert isinstance(node, ast.Subscript)
            return self._state_item(node)
        return False

    def _state_item(self, node: ast.Subscript) -> bool:
        """aiohttp's application state: ``request.app["pool"]`` or
        ``app[pool_key]``, where the project types that state."""
        if not self.index.has_state():
            return False
        owner = node.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
        if not (name.endswith("app") or name in APPLICATION_MAPPINGS):
            return False
        key = node.slice
        if isinstance(key, ast.Name):
            return self.index.state_type(key.id) is not None
        return isinstance(key, ast.Constant) and self.index.state_type(str(key.value)) is not None

    def _attribute(self, node: ast.Attribute) -> bool:
        attribute = node.attr
        if attribute in self.words:
            return True
        value = node.value
        if attribute in self.vocabulary.release_methods and _kept(value):
            # ``self.pool.close()``, and ``conn.close()`` in a helper that
            # closes its parameter.
            return True
        return (
            isinstance(value, ast.Attribute)
            and value.attr in APPLICATION_STATE
            and self.index.state_type(attribute) is not None
        )

    def _call(self, node: ast.Call) -> bool:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in self.vocabulary.returning_methods:
            return bool(node.args) and isinstance(node.args[0], ast.Name)
        return False

    def _string(self, text: str) -> bool:
        if _TYPE_TEXT.fullmatch(text) is None:
            return False
        for dotted in _DOTTED.findall(text):
            if self._means_the_model(dotted) or any(
                part in self.words for part in dotted.split(".")
            ):
                return True
        return False


def _kept(expr: ast.expr) -> bool:
    """A value the pool lifecycle may find kept somewhere: a name, an
    attribute, a subscript, or one of those awaited or cast."""
    if isinstance(expr, ast.Await):
        expr = expr.value
    if isinstance(expr, ast.Call):
        func = expr.func
        last = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        return last in _KEEPING_CALLS
    return isinstance(expr, ast.Name | ast.Attribute | ast.Subscript)


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))

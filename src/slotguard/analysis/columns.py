"""Which attributes of a mapped class are columns, and which names of a
function hold instances of one.

A session's objects are detached when it closes: what a lazy attribute loads
afterwards raises ``DetachedInstanceError``. A column attribute read while the
session is open is plain data (``order.total``), so a block that closes the
session may end before it is used; a relationship, a property or anything
else may be an object of the session, and still counts as loaded through it
(``slotguard.fixes.lifetime``).

Column attributes are those a class body declares with ``Column(...)``,
``mapped_column(...)``, ``column_property(...)``, ``deferred(...)`` or a bare
``Mapped[...]`` annotation (``model.catalog.COLUMN_FACTORIES``). A class of
another module is known through that module's summary (``Class.name`` symbols
of kind ``COLUMN``); inherited columns are not looked for (then the attribute
counts as loaded, as before).

A name holds instances of a class where it is bound from a query of that
class and nothing else binds it (nor fills it, for a list) in the statements
the resource is held over: ``for row in
db.query(Order).filter(...):``, ``[o.id for o in db.query(Order).all()]``,
``order = db.query(Order).first()``, ``order = db.get(Order, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import libcst as cst

from slotguard.analysis.index import SymbolKind
from slotguard.analysis.infer import ClassInfo, ModuleInfo
from slotguard.model.catalog import (
    COLUMN_FACTORIES,
    ENTITY_GETTERS,
    ENTITY_QUERIES,
    MAPPED_ANNOTATION,
    QUERY_REFINERS,
    QUERY_SINGLES,
)
from slotguard.syntax import CONTAINER_METHODS, assigned_names, dotted_name, last_name, walk

IsColumn = Callable[[cst.BaseExpression, str], bool]
"""Whether the class an expression names has a column of that name."""


def column_names(cls: cst.ClassDef) -> frozenset[str]:
    """The column attributes a class body declares."""
    body = cls.body
    if not isinstance(body, cst.IndentedBlock):
        return frozenset()
    found: set[str] = set()
    for statement in body.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                target = small.targets[0].target
                if isinstance(target, cst.Name) and _declares_a_column(small.value):
                    found.add(target.value)
            elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                annotation = small.annotation.annotation
                mapped = isinstance(annotation, cst.Subscript) and (
                    last_name(annotation.value) == MAPPED_ANNOTATION
                )
                if (mapped and small.value is None) or (
                    small.value is not None and _declares_a_column(small.value)
                ):
                    found.add(small.target.value)
    return frozenset(found)


def _declares_a_column(value: cst.BaseExpression) -> bool:
    return isinstance(value, cst.Call) and last_name(value.func) in COLUMN_FACTORIES


def entities(*scopes: cst.CSTNode) -> dict[str, cst.BaseExpression]:
    """The names of ``scopes`` bound only to instances of one mapped class
    (its expression, as written in the query), and to nothing else: from a
    query that gives one (``.first()``, ``db.get(...)``), or as the items of
    one that gives many, directly or through a name bound to it."""
    bindings = [binding for scope in scopes for binding in _bindings(scope)]
    many = _only(
        (target, loaded(value, False, False))
        for target, value, iterated in bindings
        if not iterated
    )
    return _only(
        (target, loaded(value, iterated, True, many)) for target, value, iterated in bindings
    )


def _only(
    pairs: Iterable[tuple[cst.BaseExpression, cst.BaseExpression | None]],
) -> dict[str, cst.BaseExpression]:
    """Names bound to one class everywhere they are bound."""
    found: dict[str, cst.BaseExpression] = {}
    other: set[str] = set()
    for target, entity in pairs:
        if entity is None or not isinstance(target, cst.Name):
            other |= set(assigned_names(target))
            continue
        previous = found.setdefault(target.value, entity)
        if previous is not entity and not previous.deep_equals(entity):
            other.add(target.value)
    return {name: entity for name, entity in found.items() if name not in other}


def _bindings(scope: cst.CSTNode) -> Iterator[tuple[cst.BaseExpression, cst.BaseExpression, bool]]:
    """(target, value, whether the target takes each item of the value). A
    collection filled in place (``rows.extend(...)``, ``rows[0] = ...``)
    counts as bound to something unknown."""
    for node in walk(scope):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Subscript):
                    yield target.target.value, _UNKNOWN, False
                yield target.target, node.value, False
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in CONTAINER_METHODS
        ):
            yield node.func.value, _UNKNOWN, False
        elif isinstance(node, cst.AnnAssign | cst.AugAssign):
            yield node.target, node.value or _UNKNOWN, False
        elif isinstance(node, cst.NamedExpr):
            yield node.target, node.value, False
        elif isinstance(node, cst.For | cst.CompFor):
            yield node.target, node.iter, True
        elif isinstance(node, cst.AsName):
            yield node.name, _UNKNOWN, False


_UNKNOWN = cst.Name("None")


def loaded(
    value: cst.BaseExpression,
    iterated: bool,
    single: bool,
    many: Mapping[str, cst.BaseExpression] | None = None,
) -> cst.BaseExpression | None:
    """The mapped class of what ``value`` gives (each of its items where
    ``iterated``): one instance where ``single``, else a query or a list of
    them. ``many``: names bound to queries or lists of one class."""
    if iterated and isinstance(value, cst.Name) and many is not None:
        return many.get(value.value) if single else None
    gives_one = False
    current = value
    while isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute):
        method = current.func.attr.value
        args = current.args
        if method in ENTITY_QUERIES and len(args) == 1 and not args[0].keyword:
            wanted = single and (gives_one != iterated)
            wanted = wanted or (not single and not gives_one and not iterated)
            return args[0].value if wanted and _names_a_class(args[0].value) else None
        if method in ENTITY_GETTERS and args and not args[0].keyword:
            if not single or iterated or current is not value:
                return None
            return args[0].value if _names_a_class(args[0].value) else None
        if method in QUERY_SINGLES and current is value:
            gives_one = True
        elif method not in QUERY_REFINERS:
            return None
        current = current.func.value
    return None


def _names_a_class(expression: cst.BaseExpression) -> bool:
    """``Order``, ``models.Order``: a capitalised last name."""
    name = last_name(expression)
    return bool(name) and name[0].isupper()


def column_test(module: ModuleInfo) -> IsColumn:
    """``is_column`` for the classes ``module`` sees: its own, by their
    bodies, and those of other modules, by their summaries (one per module,
    shared by the fixes that ask)."""
    return module.cached("column-test", lambda: _column_test(module))


def _column_test(module: ModuleInfo) -> IsColumn:
    own: dict[str, frozenset[str]] = {}

    def is_column(entity: cst.BaseExpression, attribute: str) -> bool:
        dotted = dotted_name(entity)
        if dotted is None:
            return False
        definition = module.definitions.get(dotted)
        if isinstance(definition, ClassInfo):
            if dotted not in own:
                own[dotted] = column_names(definition.node)
            return attribute in own[dotted]
        symbol = module.imported_symbol(f"{dotted}.{attribute}")
        return symbol is not None and symbol.kind is SymbolKind.COLUMN

    return is_column

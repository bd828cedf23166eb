"""Small, fast helpers over libcst trees.

libcst's visitor framework rebuilds every node it visits; walking the
dataclass fields directly is about twenty times cheaper, and slotguard walks
each analysed tree several times.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import libcst as cst

# Fields that only ever hold whitespace, punctuation or operators.
_SKIPPED_FIELD_PREFIXES = (
    "whitespace",
    "lpar",
    "rpar",
    "comma",
    "semicolon",
    "leading_lines",
    "lines_after",
    "header",
    "footer",
    "newline",
    "indent",
    "colon",
    "equal",
    "star",
    "dot",
    "operator",
    "lbracket",
    "rbracket",
    "lbrace",
    "rbrace",
    "trailing_whitespace",
    "empty_lines",
    "encoding",
    "default_",
    "has_trailing_newline",
    "asynchronous",
    "relative",
)


def _node_types() -> frozenset[type]:
    """Every libcst node class. Checking ``type(x) in`` this set is about
    fifteen times cheaper than ``isinstance`` against libcst's abstract base
    classes, and the walk does it for every field of every node."""
    found: set[type] = set()
    stack: list[type] = [cst.CSTNode]
    while stack:
        subclasses: list[type] = stack.pop().__subclasses__()
        for subclass in subclasses:
            if subclass not in found:
                found.add(subclass)
                stack.append(subclass)
    return frozenset(found)


NODE_TYPES = _node_types()
_SEQUENCES = (list, tuple)
_fields_by_type: dict[type, tuple[str, ...]] = {}


def _child_fields(node_type: type) -> tuple[str, ...]:
    fields = _fields_by_type.get(node_type)
    if fields is None:
        fields = tuple(
            f.name
            for f in dataclasses.fields(node_type)
            if not f.name.startswith(_SKIPPED_FIELD_PREFIXES)
        )
        _fields_by_type[node_type] = fields
    return fields


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The semantic child nodes of ``node``, in source order."""
    node_types = NODE_TYPES
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        kind = type(value)
        if kind in node_types:
            yield value
        elif kind in _SEQUENCES:
            for item in value:
                if type(item) in node_types:
                    yield item


CONTAINER_METHODS = frozenset(
    {
        "append",
        "appendleft",
        "extend",
        "extendleft",
        "add",
        "insert",
        "put",
        "put_nowait",
        "setdefault",
        "update",
        "push",
    }
)
"""Methods that store their arguments in the object they are called on
(lists, deques, sets, dicts, queues, stacks)."""

SCOPE_TYPES = frozenset({cst.FunctionDef, cst.ClassDef, cst.Lambda})
SCOPE_NODES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)


def walk(
    node: cst.CSTNode,
    *,
    prune: Callable[[cst.CSTNode], bool] | None = None,
) -> Iterator[cst.CSTNode]:
    """Every node under ``node`` (itself included), parents before children.

    Children of a node for which ``prune`` is true are not visited, but the node
    itself is yielded.
    """
    node_types = NODE_TYPES
    fields_of = _fields_by_type
    stack = [node]
    pop = stack.pop
    while stack:
        current = pop()
        yield current
        if prune is not None and current is not node and prune(current):
            continue
        node_type = type(current)
        fields = fields_of.get(node_type) or _child_fields(node_type)
        found: list[cst.CSTNode] = []
        for name in fields:
            value = getattr(current, name)
            kind = type(value)
            if kind in node_types:
                found.append(value)
            elif kind in _SEQUENCES:
                found.extend(item for item in value if type(item) in node_types)
        found.reverse()
        stack.extend(found)


def is_nested_scope(node: cst.CSTNode) -> bool:
    return type(node) in SCOPE_TYPES


def walk_scope(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Nodes of ``node``'s own scope: nested functions, lambdas and classes are
    yielded but not entered."""
    return walk(node, prune=is_nested_scope)


def dotted_name(expr: cst.CSTNode) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    parts: list[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if not isinstance(expr, cst.Name):
        return None
    parts.append(expr.value)
    parts.reverse()
    return ".".join(parts)


def root_name(expr: cst.CSTNode) -> str | None:
    """The leftmost name of an attribute/call/subscript chain: ``a`` in ``a.b().c``."""
    while True:
        if isinstance(expr, cst.Name):
            return expr.value
        if isinstance(expr, cst.Attribute):
            expr = expr.value
        elif isinstance(expr, cst.Call):
            expr = expr.func
        elif isinstance(expr, cst.Subscript):
            expr = expr.value
        elif isinstance(expr, cst.Await):
            expr = expr.expression
        else:
            return None


def unwrap_await(expr: cst.BaseExpression) -> tuple[cst.BaseExpression, bool]:
    """The awaited expression and whether there was an ``await``."""
    if isinstance(expr, cst.Await):
        return expr.expression, True
    return expr, False


def assigned_names(target: cst.CSTNode) -> Iterator[str]:
    """Plain names bound by an assignment target (``a``, ``(a, b)``, ``[a, *b]``)."""
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            yield from assigned_names(element.value)
    elif isinstance(target, cst.StarredElement):
        yield from assigned_names(target.value)


def names_in(node: cst.CSTNode) -> set[str]:
    """Every plain name used anywhere in ``node``, nested scopes included:
    what a closure or a deferred call keeps alive (``conn`` in ``conn.close``,
    in ``work(conn)``, in a lambda)."""
    return {n.value for n in walk(node) if isinstance(n, cst.Name)}


def decorator_names(function: cst.FunctionDef | cst.ClassDef) -> list[str]:
    """Dotted names of the decorators, with call parentheses removed."""
    names = []
    for decorator in function.decorators:
        expr = decorator.decorator
        if isinstance(expr, cst.Call):
            expr = expr.func
        name = dotted_name(expr)
        if name is not None:
            names.append(name)
    return names


def string_value(expr: cst.CSTNode) -> str | None:
    """The value of a plain (non-f, non-bytes) string literal."""
    if isinstance(expr, cst.SimpleString):
        value = expr.evaluated_value
        return value if isinstance(value, str) else None
    if isinstance(expr, cst.ConcatenatedString):
        joined = expr.evaluated_value
        return joined if isinstance(joined, str) else None
    return None


def keyword_argument(call: cst.Call, name: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def last_name(func: cst.BaseExpression) -> str:
    """The last identifier of a callee: ``close`` in ``conn.close``, ``f`` in ``f``."""
    if type(func) is cst.Attribute:
        assert isinstance(func, cst.Attribute)
        return func.attr.value
    if type(func) is cst.Name:
        assert isinstance(func, cst.Name)
        return func.value
    return ""


def is_class_name(name: str) -> bool:
    """Whether a name is spelled like a class (``Repository``, not ``TIMEOUT``)."""
    return bool(name) and name[0].isupper() and not name.isupper()


def always_true(test: cst.BaseExpression) -> bool:
    """``while True:``, ``while 1:``: a test that is true every time."""
    if isinstance(test, cst.Name):
        return test.value == "True"
    return isinstance(test, cst.Integer) and test.value not in ("0", "0x0", "0o0", "0b0")

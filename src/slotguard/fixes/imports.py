"""Imports a rewrite needs: finding how a module already spells a name, and
adding an import line where a person (or isort) would have put it."""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Sequence

import libcst as cst

from slotguard.syntax import dotted_name, walk


def spelling(module: cst.Module, qualified: str) -> str | None:
    """How the module's top-level imports let code write ``qualified``
    (``contextlib.closing``): ``contextlib.closing``, ``closing``, an alias,
    or None when nothing imports it. Kept for the last module asked about,
    as ``bound_names`` is."""
    global _last_spellings
    if _last_spellings is None or _last_spellings[0] is not module:
        _last_spellings = (module, {})
    known = _last_spellings[1]
    if qualified not in known:
        known[qualified] = _spelling(module, qualified)
    return known[qualified]


_last_spellings: tuple[cst.Module, dict[str, str | None]] | None = None


def _spelling(module: cst.Module, qualified: str) -> str | None:
    parent, _, attribute = qualified.rpartition(".")
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    if dotted_name(alias.name) == parent:
                        return f"{_bound(alias) or parent}.{attribute}"
            elif isinstance(small, cst.ImportFrom) and not small.relative:
                if small.module is None or dotted_name(small.module) != parent:
                    continue
                if isinstance(small.names, cst.ImportStar):
                    return attribute
                for alias in small.names:
                    if dotted_name(alias.name) == attribute:
                        return _bound(alias) or attribute
    return None


def _bound(alias: cst.ImportAlias) -> str | None:
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    return None


def import_line(module_name: str, bound_as: str | None = None) -> cst.SimpleStatementLine:
    alias = cst.ImportAlias(
        cst.Name(module_name),
        asname=None if bound_as in (None, module_name) else cst.AsName(cst.Name(bound_as)),
    )
    return cst.SimpleStatementLine([cst.Import([alias])])


def usable_spelling(
    module: cst.Module, qualified: str
) -> tuple[str, list[cst.SimpleStatementLine]]:
    """How new code anywhere in the module can write ``qualified``
    (``contextlib.closing``), and the import line that needs, if any.

    An existing top-level import is used only when nothing else in the
    module binds its name (a later ``from . import helpers as contextlib``,
    a local ``closing = ...``), which could make the name mean something
    else where the new code runs. Otherwise the module is imported under a
    name nothing binds: ``contextlib``, else ``_contextlib``, ...
    """
    bound = bound_names(module)
    spelled = spelling(module, qualified)
    if spelled is not None and bound[spelled.split(".")[0]] == 1:
        return spelled, []
    parent, _, attribute = qualified.rpartition(".")
    candidates = itertools.chain(
        [parent, f"_{parent}"], (f"_{parent}_{n}" for n in itertools.count(2))
    )
    name = next(candidate for candidate in candidates if not bound[candidate])
    return f"{name}.{attribute}", [import_line(parent, name)]


def bound_names(module: cst.Module) -> Counter[str]:
    """How many times each name is bound anywhere in the module, in any
    scope: by an assignment, a definition, a parameter, an import, ``as``,
    a loop or comprehension, ``:=``, ``del``, ``global``/``nonlocal`` or a
    ``match`` capture. (A star import binds names nobody can list; the
    names this module makes up start with ``_``, which it does not bind.)

    The count of the last module asked about is kept: the fixes of one file
    ask once per finding, and a walk per finding made a module with many
    findings quadratic. The counter returned is shared: do not change it."""
    global _last_bound
    if _last_bound is not None and _last_bound[0] is module:
        return _last_bound[1]
    bound = _count_bound(module)
    _last_bound = (module, bound)
    return bound


_last_bound: tuple[cst.Module, Counter[str]] | None = None


def _count_bound(module: cst.Module) -> Counter[str]:
    bound: Counter[str] = Counter()
    for node in walk(module):
        targets: list[cst.CSTNode] = []
        if isinstance(node, cst.Import | cst.ImportFrom) and not isinstance(
            node.names, cst.ImportStar
        ):
            for alias in node.names:
                if alias.asname is None:
                    full = dotted_name(alias.name) or ""
                    bound[full.split(".")[0]] += 1
        elif isinstance(node, cst.AsName):
            targets = [node.name]
        elif isinstance(node, cst.FunctionDef | cst.ClassDef | cst.Param):
            bound[node.name.value] += 1
        elif isinstance(node, cst.Assign):
            targets = [target.target for target in node.targets]
        elif isinstance(
            node, cst.AnnAssign | cst.AugAssign | cst.For | cst.CompFor | cst.NamedExpr | cst.Del
        ):
            targets = [node.target]
        elif isinstance(node, cst.Global | cst.Nonlocal):
            bound.update(item.name.value for item in node.names)
        elif isinstance(node, cst.MatchAs | cst.MatchStar) and node.name is not None:
            bound[node.name.value] += 1
        elif isinstance(node, cst.MatchMapping) and node.rest is not None:
            bound[node.rest.value] += 1
        for target in targets:
            bound.update(_target_names(target))
    return bound


def _target_names(target: cst.CSTNode) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, cst.Tuple | cst.List):
        return [name for element in target.elements for name in _target_names(element.value)]
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    return []


def with_imports(tree: cst.Module, imports: Sequence[cst.SimpleStatementLine]) -> cst.Module:
    """Add the import lines the module lacks.

    A standard-library import goes among the module's leading standard
    library imports, in alphabetical order, or, if it has none, before its
    first import (taking over the blank lines above it, so the sections stay
    apart); with no import at all, after the docstring and ``__future__``
    imports.
    """
    body: list[cst.BaseStatement] = list(tree.body)
    existing = {_normalised(tree, statement) for statement in body}
    for line in imports:
        if _normalised(tree, line) in existing:
            continue
        existing.add(_normalised(tree, line))
        body = _inserted(body, line)
    return tree.with_changes(body=body)


def _normalised(tree: cst.Module, statement: cst.CSTNode) -> str:
    if isinstance(statement, cst.SimpleStatementLine):
        statement = statement.with_changes(
            leading_lines=(), trailing_whitespace=cst.TrailingWhitespace()
        )
    return " ".join(tree.code_for_node(statement).split())


def _inserted(
    body: list[cst.BaseStatement], line: cst.SimpleStatementLine
) -> list[cst.BaseStatement]:
    name = _module_of(line) or ""
    position = 0
    while position < len(body) and _is_docstring_or_future(body[position]):
        position += 1
    first_import = position
    stdlib: list[int] = []
    for index in range(first_import, len(body)):
        imported = _module_of(body[index])
        if imported is None:
            break
        if imported.split(".")[0] in sys.stdlib_module_names:
            stdlib.append(index)
    later = [index for index in stdlib if (_module_of(body[index]) or "") > name]
    if later:
        # Before the first standard-library import that sorts after it,
        # taking over the lines above that one (a section comment, say).
        return _before(body, later[0], line, gap=False)
    if stdlib:
        return [*body[: stdlib[-1] + 1], line, *body[stdlib[-1] + 1 :]]
    if first_import < len(body) and _module_of(body[first_import]) is not None:
        # A section of its own, before the first import.
        return _before(body, first_import, line, gap=True)
    if position > 0:
        line = line.with_changes(leading_lines=(cst.EmptyLine(),))
    return [*body[:position], line, *body[position:]]


def _before(
    body: list[cst.BaseStatement], target: int, line: cst.SimpleStatementLine, *, gap: bool
) -> list[cst.BaseStatement]:
    displaced = body[target]
    assert isinstance(displaced, cst.SimpleStatementLine)
    moved = line.with_changes(leading_lines=displaced.leading_lines)
    separated = displaced.with_changes(leading_lines=(cst.EmptyLine(),) if gap else ())
    return [*body[:target], moved, separated, *body[target + 1 :]]


def _module_of(statement: cst.BaseStatement) -> str | None:
    """The module a top-level import line imports, or None for other lines."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if isinstance(small, cst.Import):
        return dotted_name(small.names[0].name)
    if isinstance(small, cst.ImportFrom) and small.module is not None and not small.relative:
        return dotted_name(small.module)
    return None


def _is_docstring_or_future(statement: cst.BaseStatement) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    small = statement.body[0]
    if isinstance(small, cst.Expr) and isinstance(
        small.value, cst.SimpleString | cst.ConcatenatedString
    ):
        return True
    return (
        isinstance(small, cst.ImportFrom)
        and isinstance(small.module, cst.Name)
        and small.module.value == "__future__"
    )

"""The fix of a session or connection that is never released (SG101, SG102,
SG103): release it after its last use, where its block no longer needs it.

    db = SessionLocal()                      with SessionLocal() as db:
    user = db.get(User, user_id)                 user = db.get(User, user_id)
    user.seen = now()                 →          user.seen = now()
    db.commit()                                  db.commit()
    notify(user_id)                          notify(user_id)

The ``with`` (``async with``) holds the statements from the acquisition to
the last one of its block that uses the resource or what was computed from
it (``slotguard.fixes.lifetime``). The fix declines when anything would
still use the resource, or what was loaded through it, after that point, or
when either leaves the function meanwhile (returned, yielded, stored,
captured, kept by a function of the module); the reason says which.

The form follows the type's context-manager semantics (``model/catalog.py``):

- its own ``with`` where that releases it and does nothing else:
  ``with SessionLocal() as db``, ``async with pool.acquire() as conn``,
  ``with engine.connect() as conn``; ``contextlib.closing(...)`` where the
  project may run a version of the library whose ``with`` does not exist
  (``with_since``, read by ``slotguard.fixes.versions``);
- a ``try``/``finally`` that releases it the way the catalogue says
  (``pool.putconn(conn)``, ``await conn.close()``), where ``with`` does not
  release (asyncpg's and psycopg2's connections, psycopg2's pool) or also
  commits (psycopg, psycopg_pool's ``connection()``): the code never
  committed what it left open, and a release rolls it back as before; and
  where the acquisition is wrapped (``asyncio.wait_for(pool.acquire(), 5)``,
  whose timeout a ``with`` would drop) or made by a project's function (whose
  context manager, if any, is unknown: the value's own release is used).

An acquisition written inside a statement (``run(SessionLocal())``) is
entered under a new name, the statement moving into the block.

The fix is unsafe: the resource is now released where it used to stay open
(a session's uncommitted work is rolled back there, as it would have been
whenever the garbage collector got to it), and code moves into a new block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from slotguard.analysis.columns import column_test
from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Plan, Unfixable
from slotguard.fixes.context_manager import (
    acquiring_statement,
    callees,
    declaration,
    function_parents,
    index_of,
    needs_closing,
    protected,
    reindent_continuations,
    site_of,
    without_leading_blank_lines,
)
from slotguard.fixes.imports import usable_spelling
from slotguard.fixes.lifetime import endless_loop, lifetime, name_nodes
from slotguard.fixes.narrowed import plan_narrowed
from slotguard.flow.held import FunctionFlow, Site
from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, RawFinding
from slotguard.rules.common import code
from slotguard.syntax import dotted_name, unwrap_await

UNSAFE = " (unsafe: it is released there, where it used to stay open)"


@dataclass(frozen=True, slots=True)
class _With:
    """Enter ``expression`` with ``with`` (``async with``)."""

    expression: cst.BaseExpression
    is_async: bool
    imports: Sequence[cst.SimpleStatementLine] = ()


@dataclass(frozen=True, slots=True)
class _Finally:
    """Release in a ``finally`` with ``release``."""

    release: cst.BaseExpression


@dataclass(frozen=True, slots=True)
class Where:
    """The statement that acquires, in its block, and what the new block
    starts with."""

    statement: cst.SimpleStatementLine
    block: cst.IndentedBlock | cst.Module
    index: int
    name: str
    first: cst.SimpleStatementLine | None
    """For an acquisition written inside a statement: that statement, with
    the acquisition replaced by ``name``."""

    @property
    def opening(self) -> list[cst.BaseStatement]:
        return [self.first] if self.first is not None else []


def plan_never_released(context: Context, finding: RawFinding) -> Plan | Unfixable:
    located = site_of(context, finding.node)
    if located is None:
        return Unfixable("the acquisition is not one the flow analysis tracks")
    flow, outcome = located
    if outcome.managed:
        return Unfixable("it is released or handed on somewhere already")
    site = outcome.site
    if site.produced.mixed:
        return plan_narrowed(context, finding.rule.code, flow, outcome)
    parents = function_parents(context, flow.function.node)
    if site.name is not None:
        statement = acquiring_statement(site, parents)
        block = parents.get(id(statement)) if statement is not None else None
        if statement is None or not isinstance(block, cst.IndentedBlock | cst.Module):
            return Unfixable(f"`{site.name} = ...` is not a statement of its own")
        where: Where | Unfixable = Where(
            statement, block, index_of(block, statement), site.name, None
        )
    else:
        where = inline(site.node, flow.function.node, _preferred_names(site, parents), parents)
    if isinstance(where, Unfixable):
        return where
    entering = _entering(context, site, flow, where.name)
    if isinstance(entering, Unfixable):
        return entering
    life = lifetime(
        flow.function.node,
        where.block,
        where.index,
        where.name,
        site.type.kind,
        parents,
        first=where.opening,
        callees=callees(context, flow.function),
        is_column=column_test(context.module),
    )
    if isinstance(life, Unfixable):
        return life
    endless = endless_loop(where.block.body[where.index + 1 : life.end])
    if endless is not None:
        return Unfixable(
            f"the new block would hold `{where.name}` through the endless "
            f"`while {code(endless.test)}:` loop after its last use, as now: "
            "release it before the loop"
        )
    if isinstance(entering, _With):
        keyword = "async with" if entering.is_async else "with"
        header = f"{keyword} {code(entering.expression)} as {where.name}"
        description = f"enter `{where.name}` with `{header}:` up to its last use" + UNSAFE
        return with_plan(
            context,
            finding.rule.code,
            where,
            where.opening,
            life.end,
            entering.expression,
            is_async=entering.is_async,
            imports=entering.imports,
            description=description,
        )
    return finally_plan(
        context,
        finding.rule.code,
        where,
        site.node,
        life.end,
        entering.release,
        f"release `{where.name}` with `{code(entering.release)}` in a `finally` "
        "after its last use" + UNSAFE,
    )


def inline(
    node: cst.BaseExpression,
    function: cst.FunctionDef,
    preferred: list[str],
    parents: dict[int, cst.CSTNode],
) -> Where | Unfixable:
    """An acquisition written inside a statement, to be entered under a new
    name: where it is, and its statement with the name in its place."""
    line = _line_of(node, parents)
    block = parents.get(id(line)) if line is not None else None
    if line is None or not isinstance(block, cst.IndentedBlock | cst.Module):
        return Unfixable("the acquisition is not inside a statement of a block")
    if len(line.body) != 1:
        return Unfixable("the acquisition shares its line with other statements")
    if not _always_evaluated(node, line, parents):
        return Unfixable(
            "the acquisition is evaluated only on some paths of its statement "
            "(a condition, a lambda or a comprehension)"
        )
    name = _fresh_name(function, preferred)
    replaced = line.deep_replace(node, cst.Name(name))
    assert isinstance(replaced, cst.SimpleStatementLine)
    first = replaced.with_changes(leading_lines=())
    return Where(line, block, index_of(block, line), name, first)


def _entering(
    context: Context, site: Site, flow: FunctionFlow, name: str
) -> _With | _Finally | Unfixable:
    resource = site.type
    if resource.is_async and not flow.function.is_async:
        return Unfixable("the resource is asynchronous but the function is not")
    produced = site.produced
    call = produced.call
    method = produced.method
    commits = resource.with_commits or (method is not None and method.context_manager)
    # ``await asyncio.wait_for(pool.acquire(), 5)``: a `with` would drop
    # what wraps the acquisition (its timeout).
    wrapped = unwrap_await(produced.expression)[0] is not call
    if produced.via_project:
        # A project's function or method: the context manager of what it
        # returns, or its own, is the project's, unknown here; the release
        # of the value itself is the library's.
        if not resource.release_methods:
            return Unfixable(f"`{code(call.func, 40)}` is the project's: its release is unknown")
        own = cst.Call(cst.Attribute(cst.Name(name), cst.Name(resource.release_methods[0])))
        return _Finally(cst.Await(own) if resource.is_async else own)
    if resource.with_releases and not commits and not wrapped:
        if needs_closing(context, resource):
            spelled, imports = usable_spelling(context.tree, "contextlib.closing")
            closing = cst.Call(cst.parse_expression(spelled), [cst.Arg(call)])
            return _With(closing, False, imports)
        keep_await = resource.kind is Kind.CONNECTION and isinstance(produced.expression, cst.Await)
        return _With(cst.Await(call) if keep_await else call, resource.is_async)
    release = _release(site, name)
    if release is None:
        return Unfixable(resource.with_note)
    return _Finally(cst.Await(release) if resource.is_async else release)


def _release(site: Site, name: str) -> cst.Call | None:
    """``pool.putconn(conn)`` or ``conn.close()``, as the catalogue says."""
    resource = site.type
    func = site.produced.call.func
    if resource.returned_by:
        if not isinstance(func, cst.Attribute) or dotted_name(func.value) is None:
            return None
        owner = func.value.deep_clone()
        method = cst.Attribute(owner, cst.Name(resource.returned_by[0]))
        return cst.Call(method, [cst.Arg(cst.Name(name))])
    if resource.release_methods:
        return cst.Call(cst.Attribute(cst.Name(name), cst.Name(resource.release_methods[0])))
    return None


def with_plan(
    context: Context,
    code_: str,
    where: Where,
    opening: Sequence[cst.BaseStatement],
    end: int,
    expression: cst.BaseExpression,
    *,
    is_async: bool,
    imports: Sequence[cst.SimpleStatementLine],
    description: str,
) -> Plan:
    """Replace the acquiring statement and the block's statements up to
    ``end`` by ``with <expression> as <name>:`` holding ``opening`` and
    them."""
    indent = context.tree.default_indent
    statement, block, index, name = where.statement, where.block, where.index, where.name

    def build() -> list[cst.BaseStatement]:
        later = list(block.body[index + 1 : end])
        moved = [reindent_continuations(part, indent) for part in [*opening, *later]]
        body = moved or [cst.SimpleStatementLine([cst.Pass()])]
        if where.first is None:
            leading, declared = declaration(statement, ())
            header = statement.trailing_whitespace
        else:
            leading, declared = statement.leading_lines, []
            header = cst.TrailingWhitespace()
        entered = cst.With(
            items=[cst.WithItem(expression, asname=cst.AsName(cst.Name(name)))],
            body=cst.IndentedBlock(body=without_leading_blank_lines(body), header=header),
            asynchronous=cst.Asynchronous() if is_async else None,
            leading_lines=leading,
        )
        return [*declared, entered]

    return Plan(
        code=code_,
        applicability=Applicability.UNSAFE,
        description=description,
        block=block,
        start=index,
        end=end,
        build=build,
        imports=imports,
    )


def finally_plan(
    context: Context,
    code_: str,
    where: Where,
    acquisition: cst.BaseExpression,
    end: int,
    release: cst.BaseExpression,
    description: str,
    kept: cst.BaseStatement | None = None,
) -> Plan:
    """Keep the acquiring statement (for one written inline: bind
    ``acquisition`` to the new name first; ``kept``: a statement around it
    that stays instead), and put what follows, up to ``end``, in a ``try``
    whose ``finally`` runs ``release``."""
    indent = context.tree.default_indent
    statement, block, index, name = where.statement, where.block, where.index, where.name

    def build() -> list[cst.BaseStatement]:
        acquired: cst.BaseStatement
        if kept is not None:
            acquired = kept
        elif where.first is None:
            acquired = statement
        else:
            acquired = cst.SimpleStatementLine(
                [cst.Assign([cst.AssignTarget(cst.Name(name))], acquisition)],
                leading_lines=statement.leading_lines,
            )
        region = [*where.opening, *block.body[index + 1 : end]]
        return [acquired, protected(region, release, indent)]

    return Plan(
        code=code_,
        applicability=Applicability.UNSAFE,
        description=description,
        block=block,
        start=index,
        end=end,
        build=build,
    )


# -- an acquisition written inside a statement ------------------------------------

_EAGER = (
    cst.Arg,
    cst.Call,
    cst.Attribute,
    cst.Subscript,
    cst.SubscriptElement,
    cst.Index,
    cst.Await,
    cst.Element,
    cst.Tuple,
    cst.List,
    cst.Dict,
    cst.DictElement,
    cst.BinaryOperation,
    cst.UnaryOperation,
    cst.Comparison,
    cst.ComparisonTarget,
    cst.Assign,
    cst.AnnAssign,
    cst.Expr,
    cst.Return,
)
"""Nodes whose parts are all evaluated whenever they are: an acquisition
under nothing else runs whenever its statement does."""


def _line_of(node: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> cst.SimpleStatementLine | None:
    current = parents.get(id(node))
    while current is not None and not isinstance(current, cst.SimpleStatementLine):
        if isinstance(current, cst.BaseCompoundStatement):
            return None
        current = parents.get(id(current))
    return current


def _always_evaluated(
    node: cst.CSTNode, line: cst.SimpleStatementLine, parents: dict[int, cst.CSTNode]
) -> bool:
    current = parents.get(id(node))
    while current is not None and current is not line:
        if not isinstance(current, _EAGER):
            return False
        current = parents.get(id(current))
    return current is line


def _preferred_names(site: Site, parents: dict[int, cst.CSTNode]) -> list[str]:
    """The keyword it is passed as (``db_session=SessionLocal()``), then a
    name after its kind."""
    kind = "session" if site.type.kind is Kind.SESSION else "conn"
    parent = parents.get(id(site.node))
    if isinstance(parent, cst.Arg) and parent.keyword is not None:
        return [parent.keyword.value, kind]
    return [kind]


def _fresh_name(function: cst.FunctionDef, preferred: list[str]) -> str:
    """The first preferred name the function does not use, else the last
    one numbered (``conn_2``, ...)."""
    taken = {node.value for node in name_nodes(function)}
    for candidate in preferred:
        if candidate not in taken:
            return candidate
    base, number = preferred[-1], 2
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"

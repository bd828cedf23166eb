"""The fix of a resource from a project function that returns something else
on some of its paths, once a test has shown which one the caller holds.

    session = open_session()             session = open_session()
    if session is None:                  if session is None:
        return []                            return []
    rows = session.query(Order)    →     try:
    return [r.id for r in rows]              rows = session.query(Order)
                                             return [r.id for r in rows]
                                         finally:
                                             session.close()

A ``with`` or a release right after the call would break where the function
returned ``None``, ``False`` or a ``(connection, cursor)`` tuple instead
(``FunctionInfo.returns_something_else`` records which of those shapes). A
test of the name right after the call that rules out every one of them on
one side, and holds only them on the other, tells where the value is the
resource: after a guard that leaves (``if db is None: return``), in the
branch it selects (``if db:``, ``else:`` of ``if isinstance(db, tuple):``).
There, from the start of that code to the resource's last use, the
statements go into a ``try`` whose ``finally`` releases it the way the
resource releases itself (``session.close()``): what the project's function
hands back is known only by its type, so its own context manager is not
relied on, as for every acquisition through a project function.

Where the code there already releases it at the end, and an early exit or
an exception skips that release, the release moves into the ``finally``
instead (``context_manager.release_in_finally``): safe, as for any
acquisition, since it runs where it ran before, and on the paths that
skipped it. Otherwise the fix is unsafe, like the never-released fix: the
resource is now released where it used to stay open; where nothing uses it
in that code, it is released at once.

The fix declines when no such test follows the call (a statement in
between could raise with the resource held: a path the new ``finally``
would not cover), when the code where it is the resource hands it on
(returns it, stores it) or releases it in a way that cannot move, and for
every reason the never-released fix declines (``slotguard.fixes.lifetime``):
the resource, or what was loaded through it, used after the new block,
kept by a function of the module, or leaving the function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import libcst as cst

from slotguard.analysis.columns import column_test
from slotguard.analysis.index import (
    FALSY_SHAPE,
    NONE_SHAPE,
    OTHER_SHAPE,
    OTHER_SHAPES,
    TUPLE_SHAPE,
)
from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Plan, Unfixable
from slotguard.fixes.context_manager import (
    acquiring_statement,
    callees,
    function_parents,
    index_of,
    plan_context_manager,
    protected,
    release_in_finally,
    returns_something_else,
    site_of,
)
from slotguard.fixes.lifetime import endless_loop, lifetime, mentions
from slotguard.flow.cfg import Point
from slotguard.flow.effects import Effects, compared_with_none
from slotguard.flow.held import FunctionFlow, SiteOutcome, releases
from slotguard.rules.base import Context, RawFinding
from slotguard.rules.common import code
from slotguard.syntax import walk

UNSAFE = " (unsafe: it is released there, where it used to stay open)"

_Shapes = frozenset[str]
_NOTHING: _Shapes = frozenset()
_SPELLED = {NONE_SHAPE: "`None`", FALSY_SHAPE: "a false value", TUPLE_SHAPE: "a tuple"}


@dataclass(frozen=True, slots=True)
class _Narrowed:
    """Where a test has shown the value is the resource."""

    test: cst.BaseExpression
    outcome: bool
    """The value of ``test`` there."""
    block: cst.IndentedBlock | cst.Module
    index: int
    """The statement of ``block`` after which the value is the resource
    (the guard), or -1 when it is from the start of ``block`` (a branch)."""
    ignored: frozenset[int]
    """``id`` of the nodes of the branches where it is something else."""


def plan_acquisition(
    context: Context, finding: RawFinding, *, wants_context_manager: bool = False
) -> Plan | Unfixable:
    """``plan_context_manager``, or, for a resource from a function that may
    return something else, the release where a test shows it is the
    resource."""
    located = site_of(context, finding.node)
    if located is not None and located[1].site.produced.mixed:
        return plan_narrowed(context, finding.rule.code, *located)
    return plan_context_manager(context, finding, wants_context_manager=wants_context_manager)


def plan_narrowed(
    context: Context, code_: str, flow: FunctionFlow, outcome: SiteOutcome
) -> Plan | Unfixable:
    """The plan for a finding at an acquisition whose function may return
    something else (``site.produced.mixed``)."""
    site = outcome.site
    name = site.name
    declined = Unfixable(returns_something_else(site))
    resource = site.type
    if name is None or not resource.release_methods:
        return declined
    parents = function_parents(context, flow.function.node)
    statement = acquiring_statement(site, parents)
    block = parents.get(id(statement)) if statement is not None else None
    if statement is None or not isinstance(block, cst.IndentedBlock | cst.Module):
        return declined
    shapes = site.produced.mixed
    if OTHER_SHAPE in shapes:
        return declined
    narrowed = _narrowing(block, index_of(block, statement), name, shapes)
    if isinstance(narrowed, str):
        spelled = " or ".join(_SPELLED[shape] for shape in OTHER_SHAPES if shape in shapes)
        return Unfixable(f"`{site.produced.callee}()` may return {spelled} instead, and {narrowed}")
    start = narrowed.index + 1
    # Where it is the resource, nothing may take it over: a new release
    # would close it under its new owner.
    handed = _handed_on(flow, outcome, narrowed.block.body[start:])
    if handed is not None:
        return handed
    # A release the code already writes there moves into a ``finally``.
    moved = release_in_finally(context, site, narrowed.block, narrowed.index)
    if moved is not None:
        return dataclasses.replace(moved, code=code_)
    if resource.is_async and not flow.function.is_async:
        return Unfixable("the resource is asynchronous but the function is not")
    life = lifetime(
        flow.function.node,
        narrowed.block,
        narrowed.index,
        name,
        resource.kind,
        parents,
        callees=callees(context, flow.function),
        ignored=narrowed.ignored,
        is_column=column_test(context.module),
    )
    if isinstance(life, Unfixable):
        return life
    held = list(narrowed.block.body[start : life.end])
    endless = endless_loop(held)
    if endless is not None:
        return Unfixable(
            f"the new block would hold `{name}` through the endless "
            f"`while {code(endless.test)}:` loop, as now: release it before the loop"
        )
    already = _released_there(flow, outcome, held)
    if already is not None:
        return already
    own = cst.Call(cst.Attribute(cst.Name(name), cst.Name(resource.release_methods[0])))
    release: cst.BaseExpression = cst.Await(own) if resource.is_async else own
    indent = context.tree.default_indent

    def build() -> list[cst.BaseStatement]:
        if not held:
            # Nothing uses it there: released at once.
            return [cst.SimpleStatementLine([cst.Expr(release)])]
        return [protected(held, release, indent)]

    where = "true" if narrowed.outcome else "false"
    return Plan(
        code=code_,
        applicability=Applicability.UNSAFE,
        description=(
            f"release `{name}` with `{code(release)}` "
            + ("in a `finally` " if held else "at once (nothing uses it there) ")
            + f"where `{code(narrowed.test, 40)}` is {where}"
            + UNSAFE
        ),
        block=narrowed.block,
        start=start,
        end=life.end,
        build=build,
    )


def _narrowing(
    block: cst.IndentedBlock | cst.Module, index: int, name: str, shapes: _Shapes
) -> _Narrowed | str:
    """The test of ``name`` right after ``block.body[index]``, if one of its
    sides rules out every shape in ``shapes`` (and the other holds only
    them); else why not. A statement in between could raise with the
    resource held, a path no release in the branch would cover."""
    statement = block.body[index + 1] if index + 1 < len(block.body) else None
    if not isinstance(statement, cst.If) or not mentions(statement.test, {name}):
        return f"no test of `{name}` right after it tells which"
    test, body, orelse = statement.test, statement.body, statement.orelse
    not_a_block = f"the branch where `{code(test, 40)}` shows it is the resource is not a block"
    if shapes <= _excluded(test, name, True):
        if not isinstance(body, cst.IndentedBlock):
            return not_a_block
        ignored = _ids(test) | (_ids(orelse) if orelse is not None else frozenset())
        return _Narrowed(test, True, body, -1, ignored)
    if shapes <= _excluded(test, name, False):
        if isinstance(orelse, cst.Else) and isinstance(orelse.body, cst.IndentedBlock):
            return _Narrowed(test, False, orelse.body, -1, _ids(test) | _ids(body))
        if orelse is None and _leaves(body):
            return _Narrowed(test, False, block, index + 1, frozenset())
        return not_a_block
    return f"`{code(test, 40)}` does not rule that out"


def _excluded(test: cst.BaseExpression, name: str, outcome: bool) -> _Shapes:
    """The shapes a value of ``name`` cannot have where ``test`` is
    ``outcome``. Only tests whose other side holds nothing but those shapes
    (``db is None``, ``not conn``, ``isinstance(handle, tuple)``): where
    ``a and b`` is false, the resource may still be held."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _excluded(test.expression, name, not outcome)
    if isinstance(test, cst.Name):
        # The resource is an object without ``__bool__`` or ``__len__``: true.
        return frozenset({NONE_SHAPE, FALSY_SHAPE}) if test.value == name and outcome else _NOTHING
    compared = compared_with_none(test)
    if compared is not None:
        tested, none_if_true = compared
        return frozenset({NONE_SHAPE}) if tested == name and outcome != none_if_true else _NOTHING
    if (
        not outcome
        and isinstance(test, cst.Call)
        and _is_name(test.func, "isinstance")
        and len(test.args) == 2
        and _is_name(test.args[0].value, name)
        and _is_name(test.args[1].value, "tuple")
    ):
        return frozenset({TUPLE_SHAPE})
    return _NOTHING


def _is_name(node: cst.CSTNode, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _leaves(body: cst.BaseSuite) -> bool:
    """Whether a branch always leaves the code after its ``if`` (its last
    statement returns, raises, breaks or continues)."""
    last: cst.CSTNode | None = None
    if isinstance(body, cst.SimpleStatementSuite):
        last = body.body[-1] if body.body else None
    elif body.body and isinstance(body.body[-1], cst.SimpleStatementLine):
        last = body.body[-1].body[-1]
    return isinstance(last, cst.Return | cst.Raise | cst.Break | cst.Continue)


def _ids(node: cst.CSTNode) -> frozenset[int]:
    return frozenset(id(each) for each in walk(node))


def _points_in(
    flow: FunctionFlow, statements: Sequence[cst.BaseStatement]
) -> Iterator[tuple[Point, Effects]]:
    inside = {id(node) for statement in statements for node in walk(statement)}
    for point in flow.graph.points:
        if point.node is not None and id(point.node) in inside:
            yield point, flow.effects[point.index]


def _handed_on(
    flow: FunctionFlow, outcome: SiteOutcome, statements: Sequence[cst.BaseStatement]
) -> Unfixable | None:
    """Why the statements' resource cannot get a new release: one of them
    hands it on (returns it, stores it, gives it to a new owner)."""
    for _, effects in _points_in(flow, statements):
        handed = outcome.names & effects.handoffs
        if handed:
            return Unfixable(f"`{sorted(handed)[0]}` is handed to another owner on some path")
    return None


def _released_there(
    flow: FunctionFlow, outcome: SiteOutcome, statements: Sequence[cst.BaseStatement]
) -> Unfixable | None:
    """Why the held statements cannot take a ``finally`` that releases: one
    of them releases it already, in a way that cannot move there."""
    resource = outcome.site.type
    for point, effects in _points_in(flow, statements):
        if any(releases(candidate, outcome.names, resource) for candidate in effects.releases):
            assert point.node is not None
            return Unfixable(f"`{code(point.node, 40)}` releases it already on some path")
    return None

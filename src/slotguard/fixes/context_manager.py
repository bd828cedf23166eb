"""The rewrite most fixes share: from a bare acquisition to its release, into
the context-manager form.

Two shapes are rewritten, both only when nothing between the acquisition and
the release rebinds or releases the name:

    conn = await pool.acquire()          async with pool.acquire() as conn:
    try:                                     BODY
        BODY                      →
    finally:
        await pool.release(conn)

    db = SessionLocal()                  with SessionLocal() as db:
    BODY                          →          BODY
    db.close()

Statements between the acquisition and the ``try`` join the ``with`` body,
and a ``try`` that has more than the release to do (handlers, an ``else``,
other ``finally`` statements) stays inside it, smaller. The first shape
releases on exactly the paths the code already released on; the second adds
the release on the paths that skipped it (an early ``return``, an exception,
a ``yield`` the consumer never resumes), which is what the findings it fixes
(SG201, SG202, SG203) ask for.

Where ``with`` would not release (an asyncpg or psycopg2 connection), or
would do more than the release (psycopg's connection commits; psycopg_pool's
``connection()`` ends the transaction), the SG2 findings get a ``finally``
instead: a new ``try``/``finally`` around the statements up to a trailing
release, or the statements between the acquisition and a handler-less
``try``/``finally`` that releases moved into it. SG101 and SG102 are about
the missing ``with`` itself, so they get the unsafe ``with`` or nothing.

A comment on the acquisition line moves to the ``with`` line; comments in
the body, above the ``try`` and after its last statement move with the code
they belong to. Where a comment would have nowhere to go (on the ``try:``
line, on or above the release, on or above a ``finally:`` that goes away),
the fix declines, and the reason shows in the ``fix`` summary, as it does
for every other shape left alone.
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst

from slotguard.analysis.infer import FunctionInfo
from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Plan, Unfixable
from slotguard.fixes.imports import usable_spelling
from slotguard.fixes.versions import every_version_has
from slotguard.flow.held import FunctionFlow, Site, SiteOutcome, flows
from slotguard.model.vocabulary import Kind, ResourceType
from slotguard.rules.base import Context, RawFinding
from slotguard.rules.common import code
from slotguard.syntax import assigned_names, children, unwrap_await, walk


@dataclass(frozen=True, slots=True)
class _Manager:
    """What to enter instead of the bare acquisition."""

    expression: cst.BaseExpression
    is_async: bool
    applicability: Applicability
    caveat: str = ""
    """Why the fix is unsafe, for its description."""
    imports: Sequence[cst.SimpleStatementLine] = ()


@dataclass(frozen=True, slots=True)
class _Region:
    """The statements from just after the acquisition up to the release."""

    end: int
    """Index, in the acquisition's block, of the first statement after it."""
    body: list[cst.BaseStatement]
    """The statements the ``with`` will hold."""
    deeper: frozenset[int]
    """``id`` of the statements of ``body`` that move one level deeper."""
    footer: Sequence[cst.EmptyLine] = ()
    """Comments that followed the last statement of a dissolved ``try``."""
    exits: bool = False
    """Releases just before a ``return`` or ``raise`` were taken out: the
    block's end releases there instead, once the value is computed."""


def plan_context_manager(
    context: Context, finding: RawFinding, *, wants_context_manager: bool = False
) -> Plan | Unfixable:
    """The plan for a finding at an acquisition. ``wants_context_manager``:
    the finding is about the missing ``with`` itself (SG101, SG102), so a
    ``finally`` does not fix it. The other findings take the ``with`` when
    it is safe and possible, else a ``finally`` if there is one to write.
    Several findings at one acquisition share the work."""
    located = site_of(context, finding.node)
    if located is None:
        return Unfixable("the acquisition is not one the flow analysis tracks")
    flow, outcome = located
    known = _analysis(context).plans
    if (id(outcome), True) not in known:
        known[(id(outcome), True)] = _with_plan(context, flow, outcome)
    planned = known[(id(outcome), True)]
    safe = isinstance(planned, Plan) and planned.applicability is Applicability.SAFE
    if not wants_context_manager and not safe:
        if (id(outcome), False) not in known:
            # A safe ``finally`` beats an unsafe ``with``; between two unsafe
            # rewrites, the ``with`` reads better.
            alternative = _finally_plan(context, flow, outcome)
            usable = alternative is not None and (
                alternative.applicability is Applicability.SAFE or not isinstance(planned, Plan)
            )
            known[(id(outcome), False)] = alternative if usable and alternative else planned
        planned = known[(id(outcome), False)]
    if isinstance(planned, Plan):
        return dataclasses.replace(planned, code=finding.rule.code)
    return planned


@dataclass(frozen=True, slots=True)
class _Place:
    """Where the acquisition is: a statement of its own, in a block."""

    site: Site
    statement: cst.SimpleStatementLine
    block: cst.IndentedBlock | cst.Module
    index: int


def _place(context: Context, flow: FunctionFlow, outcome: SiteOutcome) -> _Place | Unfixable:
    site = outcome.site
    if site.name is None:
        return Unfixable("the acquired value is not bound to a name")
    if outcome.handed_off:
        # A ``with`` would release it under its new owner's feet.
        return Unfixable(f"`{site.name}` is handed to another owner on some path")
    if site.produced.mixed:
        return Unfixable(returns_something_else(site))
    parents = function_parents(context, flow.function.node)
    statement = acquiring_statement(site, parents)
    block = parents.get(id(statement)) if statement is not None else None
    if statement is None or not isinstance(block, cst.IndentedBlock | cst.Module):
        return Unfixable(f"`{site.name} = ...` is not a statement of its own")
    return _Place(site, statement, block, index_of(block, statement))


def returns_something_else(site: Site) -> str:
    """Why an acquisition through a project function that does not always
    return the resource is not rewritten."""
    return (
        f"`{site.produced.callee}()` returns something else on some of its paths, "
        "which a `with` or a release would break on"
    )


def _finally_plan(context: Context, flow: FunctionFlow, outcome: SiteOutcome) -> Plan | None:
    place = _place(context, flow, outcome)
    if isinstance(place, Unfixable):
        return None
    return release_in_finally(context, place.site, place.block, place.index)


def _with_plan(context: Context, flow: FunctionFlow, outcome: SiteOutcome) -> Plan | Unfixable:
    place = _place(context, flow, outcome)
    if isinstance(place, Unfixable):
        return place
    site, statement, block, index = place.site, place.statement, place.block, place.index
    manager = _context_manager(context, site, flow)
    if isinstance(manager, Unfixable):
        return manager
    others = [other.site for other in flow.outcomes if other.site is not site]
    region = _with_try_finally(site, others, block, index) or _with_trailing_release(
        site, block, index
    )
    above: Sequence[cst.EmptyLine] = ()
    if region is None:
        enclosing = _enclosing_try(
            site, block, index, function_parents(context, flow.function.node)
        )
        if isinstance(enclosing, _Enclosing):
            region, block = enclosing.region, enclosing.block
            index, above = enclosing.index, enclosing.above
        else:
            region = enclosing
    if isinstance(region, Unfixable):
        return region
    if region is None:
        return Unfixable(
            f"`{site.name}` is not released in the `finally` of a later `try` of its block, "
            "nor by a later statement of its block"
        )
    # New blocks are indented by the module's default indentation.
    indent = context.tree.default_indent
    name = site.name
    assert name is not None

    def build() -> list[cst.BaseStatement]:
        body = [
            reindent_continuations(part, indent) if id(part) in region.deeper else part
            for part in region.body
        ]
        leading, declared = declaration(statement, above)
        entered = cst.With(
            items=[cst.WithItem(manager.expression, asname=cst.AsName(cst.Name(name)))],
            # A comment on the acquisition line stays on the ``with`` line.
            body=cst.IndentedBlock(
                body=without_leading_blank_lines(body),
                header=statement.trailing_whitespace,
                footer=region.footer,
            ),
            asynchronous=cst.Asynchronous() if manager.is_async else None,
            leading_lines=leading,
        )
        return [*declared, entered]

    keyword = "async with" if manager.is_async else "with"
    header = f"{keyword} {code(manager.expression)} as {name}"
    applicability, caveat = manager.applicability, manager.caveat
    if region.exits:
        applicability, caveat = Applicability.UNSAFE, caveat + EXITS_CAVEAT
    return Plan(
        code="",
        applicability=applicability,
        description=f"rewrite as `{header}:`" + caveat,
        block=block,
        start=index,
        end=region.end,
        build=build,
        imports=manager.imports,
    )


@dataclass(slots=True)
class _Analysis:
    """What the plans of one module's findings share, computed once."""

    sites: dict[int, tuple[FunctionFlow, SiteOutcome]]
    """By ``id`` of the acquisition node (and of its call)."""
    parents: dict[int, dict[int, cst.CSTNode]]
    """Child → parent maps, by ``id`` of the function node."""
    plans: dict[tuple[int, bool], Plan | Unfixable] = field(default_factory=dict)
    """By ``id`` of the site's outcome and whether the ``with`` is wanted."""


_ANALYSES: weakref.WeakKeyDictionary[Context, _Analysis] = weakref.WeakKeyDictionary()


def _analysis(context: Context) -> _Analysis:
    analysis = _ANALYSES.get(context)
    if analysis is None:
        sites: dict[int, tuple[FunctionFlow, SiteOutcome]] = {}
        for flow in flows(context.module):
            for outcome in flow.outcomes:
                sites.setdefault(id(outcome.site.node), (flow, outcome))
                sites.setdefault(id(outcome.site.produced.call), (flow, outcome))
        analysis = _ANALYSES[context] = _Analysis(sites, {})
    return analysis


def site_of(context: Context, node: cst.CSTNode) -> tuple[FunctionFlow, SiteOutcome] | None:
    return _analysis(context).sites.get(id(node))


def function_parents(context: Context, function: cst.FunctionDef) -> dict[int, cst.CSTNode]:
    known = _analysis(context).parents
    parents = known.get(id(function))
    if parents is None:
        parents = known[id(function)] = _parents(function)
    return parents


def _context_manager(context: Context, site: Site, flow: FunctionFlow) -> _Manager | Unfixable:
    """The expression to enter, whether with ``async with``, and how safe."""
    resource = site.type
    if not resource.with_releases:
        return Unfixable(
            f"`with` does not release {_article(resource.kind.value)}: {resource.with_note}"
        )
    if resource.is_async and not flow.function.is_async:
        return Unfixable("the context manager is asynchronous but the function is not")
    produced = site.produced
    call = produced.call
    if produced.via_project:
        return Unfixable(
            f"`{code(call.func, 40)}` is the project's: its context manager is unknown"
        )
    if unwrap_await(produced.expression)[0] is not call:
        # ``await asyncio.wait_for(pool.acquire(), 5)``: the `with` form would
        # drop what wraps the acquisition (its timeout).
        return Unfixable(f"the acquisition is wrapped in `{code(produced.expression, 40)}`")
    method = produced.method
    if method is not None and method.context_manager and isinstance(call.func, cst.Attribute):
        # ``getconn``/``putconn`` becomes ``connection()``, which also ends the
        # transaction at the end of the block: a change of behaviour.
        call = call.with_changes(func=call.func.with_changes(attr=cst.Name(method.context_manager)))
        caveat = f" (unsafe: `{method.context_manager}()` also commits or rolls back)"
        return _Manager(call, resource.is_async, Applicability.UNSAFE, caveat)
    if needs_closing(context, resource):
        # Its own ``with`` releases only in recent versions of its library;
        # ``closing`` calls the release the code already called, in all.
        spelled, imports = usable_spelling(context.tree, "contextlib.closing")
        wrapped = cst.Call(cst.parse_expression(spelled), [cst.Arg(call)])
        return _Manager(wrapped, resource.is_async, Applicability.SAFE, imports=imports)
    if resource.kind is Kind.CONNECTION:
        # A direct connection's own context manager may end its transaction
        # too (psycopg commits), where ``close()`` discarded it.
        keep_await = isinstance(produced.expression, cst.Await)
        expression: cst.BaseExpression = cst.Await(call) if keep_await else call
        caveat = " (unsafe: a connection's context manager may also commit)"
        return _Manager(expression, resource.is_async, Applicability.UNSAFE, caveat)
    return _Manager(call, resource.is_async, Applicability.SAFE)


def needs_closing(context: Context, resource: ResourceType) -> bool:
    """Whether the ``with`` to write is ``contextlib.closing(...)``: the
    type's own ``with`` releases only from some version of its library on,
    and the project may run an older one (``slotguard.fixes.versions``)."""
    if not (resource.closing_form or resource.with_since) or resource.is_async:
        return False
    return not (resource.with_since and every_version_has(context.path_object, resource.with_since))


def _article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _parents(root: cst.CSTNode) -> dict[int, cst.CSTNode]:
    parents: dict[int, cst.CSTNode] = {}
    for node in walk(root):
        for child in children(node):
            parents[id(child)] = node
    return parents


def acquiring_statement(
    site: Site, parents: dict[int, cst.CSTNode]
) -> cst.SimpleStatementLine | None:
    """The line ``name = <acquisition>`` holding nothing else."""
    assignment = parents.get(id(site.node))
    line = parents.get(id(assignment)) if assignment is not None else None
    if not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1:
        return None
    if isinstance(assignment, cst.Assign):
        if len(assignment.targets) != 1:
            return None
        target: cst.BaseExpression = assignment.targets[0].target
    elif isinstance(assignment, cst.AnnAssign):
        target = assignment.target
    else:
        return None
    if not isinstance(target, cst.Name) or target.value != site.name:
        return None
    return line


def declaration(
    statement: cst.SimpleStatementLine, above: Sequence[cst.EmptyLine]
) -> tuple[Sequence[cst.EmptyLine], list[cst.BaseStatement]]:
    """For ``conn: Connection = ...``, the annotation kept as a declaration
    above the ``with`` (which cannot carry one); ``above`` and the lines
    above the acquisition go above whichever comes first."""
    leading = [*above, *statement.leading_lines]
    assignment = statement.body[0]
    if not isinstance(assignment, cst.AnnAssign):
        return leading, []
    declaration = cst.SimpleStatementLine(
        [assignment.with_changes(value=None, equal=cst.MaybeSentinel.DEFAULT)],
        leading_lines=leading,
    )
    return (), [declaration]


def index_of(block: cst.IndentedBlock | cst.Module, statement: cst.CSTNode) -> int:
    for index, candidate in enumerate(block.body):
        if candidate is statement:
            return index
    raise ValueError("statement not in its block")


def _with_try_finally(
    site: Site, others: Sequence[Site], block: cst.IndentedBlock | cst.Module, index: int
) -> _Region | Unfixable | None:
    """A later statement of the block is a ``try`` whose ``finally`` ends with
    the release (or with it and then only releases of other resources, which
    may as well come first), or whose handlers and ``else`` each end by
    releasing; what comes between joins the ``with`` body (so an early
    ``return`` before the ``try`` releases too)."""
    for position in range(index + 1, len(block.body)):
        candidate = block.body[position]
        if isinstance(candidate, cst.Try):
            final = candidate.finalbody.body if candidate.finalbody is not None else None
            release = (
                _final_release(final.body, site, others)
                if isinstance(final, cst.IndentedBlock)
                else None
            )
            if release is not None or (final is None and _released_each_way(candidate, site)):
                break
        if _rebinds_or_releases(candidate, site):
            return None
    else:
        return None
    between = list(block.body[index + 1 : position])
    if release is None:
        inner = _without_releases_each_way(site, candidate)
    else:
        inner = _without_final_release(site, candidate, release)
    if isinstance(inner, Unfixable):
        return inner
    statements, footer = inner
    deeper = {id(part) for part in between}
    if footer is None:
        # The ``try`` stays, one level deeper.
        deeper.update(id(part) for part in statements)
    return _Region(position + 1, [*between, *statements], frozenset(deeper), footer or ())


@dataclass(frozen=True, slots=True)
class _Enclosing:
    """The ``try`` around the acquisition becomes the ``with``: the region,
    and where the ``try`` is."""

    region: _Region
    block: cst.IndentedBlock | cst.Module
    index: int
    above: Sequence[cst.EmptyLine]
    """The lines above the ``try``."""


def _enclosing_try(
    site: Site,
    block: cst.IndentedBlock | cst.Module,
    index: int,
    parents: dict[int, cst.CSTNode],
) -> _Enclosing | Unfixable | None:
    """``try: conn = acquire() ... finally: release(conn)``: the acquisition
    opens the body of a ``try`` whose ``finally`` is only the release. (If
    the acquisition raised, that ``finally`` would release a name never
    bound; the ``with`` does not have that bug.)"""
    statement = parents.get(id(block))
    if index != 0 or not isinstance(statement, cst.Try) or statement.body is not block:
        return None
    if statement.handlers or statement.orelse is not None or statement.finalbody is None:
        return None
    final = statement.finalbody.body
    if not isinstance(final, cst.IndentedBlock) or len(final.body) != 1:
        return None
    release = final.body[0]
    if not _is_release(release, site):
        return None
    outer = parents.get(id(statement))
    if not isinstance(outer, cst.IndentedBlock | cst.Module) or _bound_elsewhere(
        site, block.body[0], parents
    ):
        # Bound before the ``try``, the name is what its ``finally``
        # releases when the acquisition fails; the ``with`` would not.
        return None
    assert isinstance(release, cst.SimpleStatementLine)
    if _comments(release.leading_lines) or _has_comment(release.trailing_whitespace):
        return Unfixable("a comment on or above the release has nowhere to go")
    if _block_comments(final) or _comments(statement.finalbody.leading_lines):
        return Unfixable("a comment in the `finally` has nowhere to go")
    assert isinstance(block, cst.IndentedBlock)
    if _has_comment(block.header):
        return Unfixable("a comment on the `try:` line has nowhere to go")
    rest = list(block.body[1:])
    if any(_rebinds_or_releases(part, site) for part in rest):
        return Unfixable(f"`{site.name}` is rebound or released again inside the `try`")
    position = index_of(outer, statement)
    body = rest or [cst.SimpleStatementLine([cst.Pass()])]
    return _Enclosing(
        _Region(position + 1, body, frozenset(), block.footer),
        outer,
        position,
        statement.leading_lines,
    )


def _bound_elsewhere(
    site: Site, statement: cst.BaseStatement, parents: dict[int, cst.CSTNode]
) -> bool:
    """Whether the function binds the name anywhere but in ``statement``
    (its parameters included)."""
    function: cst.CSTNode | None = statement
    while function is not None and not isinstance(function, cst.FunctionDef):
        function = parents.get(id(function))
    if function is None:
        return True
    inside = {id(node) for node in walk(statement)}
    return any(
        site.name in _bound_names(node)
        or (isinstance(node, cst.Param) and node.name.value == site.name)
        for node in walk(function)
        if id(node) not in inside
    )


def _final_release(
    final: Sequence[cst.BaseStatement], site: Site, others: Sequence[Site]
) -> int | None:
    """Where in a ``finally`` the release is, if only releases of other
    resources follow it."""
    for position in range(len(final) - 1, -1, -1):
        if _is_release(final[position], site):
            return position
        if not any(_is_release(final[position], other) for other in others):
            return None
    return None


def _without_final_release(
    site: Site, statement: cst.Try, position: int
) -> tuple[list[cst.BaseStatement], Sequence[cst.EmptyLine] | None] | Unfixable:
    """The ``try`` without the release in its ``finally``: the ``finally``
    shrinks, or disappears, or the whole ``try`` dissolves. With the
    statements comes, for a dissolved ``try`` (whose body keeps its depth),
    the comments that followed its last statement; None for a ``try`` that
    stays (and moves one level deeper)."""
    assert statement.finalbody is not None
    finally_block = statement.finalbody.body
    final = list(finally_block.body)
    release = final[position]
    assert isinstance(release, cst.SimpleStatementLine)
    if _comments(release.leading_lines) or _has_comment(release.trailing_whitespace):
        return Unfixable("a comment on or above the release has nowhere to go")
    remaining = [*final[:position], *final[position + 1 :]]
    protected = [statement.body, *statement.handlers, statement.orelse, *remaining]
    if any(part is not None and _rebinds_or_releases(part, site) for part in protected):
        return Unfixable(f"`{site.name}` is rebound or released again inside the `try`")
    if remaining:
        shortened = finally_block.with_changes(body=remaining)
        smaller = statement.with_changes(finalbody=statement.finalbody.with_changes(body=shortened))
        return [smaller], None
    if _block_comments(finally_block) or _comments(statement.finalbody.leading_lines):
        return Unfixable("a comment in the `finally` has nowhere to go")
    if statement.handlers:
        return [statement.with_changes(finalbody=None)], None
    return _dissolved(statement)


def _released_each_way(statement: cst.Try, site: Site) -> bool:
    """``try`` whose every handler ends by releasing and re-raising, and
    whose ``else`` ends by releasing: a ``finally`` in all but name, that
    misses the exceptions no handler catches (``CancelledError``,
    ``GeneratorExit``), and a ``return`` in the body."""
    if not statement.handlers or statement.orelse is None:
        return False
    for handler in statement.handlers:
        if not isinstance(handler.body, cst.IndentedBlock):
            return False
        body = handler.body.body
        if len(body) < 2 or not _is_reraise(body[-1]) or not _is_release(body[-2], site):
            return False
    orelse = statement.orelse.body
    return (
        isinstance(orelse, cst.IndentedBlock)
        and bool(orelse.body)
        and _is_release(orelse.body[-1], site)
    )


def _is_reraise(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Raise)
        and statement.body[0].exc is None
    )


def _without_releases_each_way(
    site: Site, statement: cst.Try
) -> tuple[list[cst.BaseStatement], Sequence[cst.EmptyLine] | None] | Unfixable:
    """The ``try`` without its releases: handlers left with only ``raise``
    go from the end (one before another handler would change which handler
    catches what); an ``else`` left empty goes; a ``try`` left with neither
    dissolves, its ``else`` running right after its body."""
    assert statement.orelse is not None
    orelse = statement.orelse.body
    assert isinstance(orelse, cst.IndentedBlock)
    releases = [orelse.body[-1]]
    handlers = []
    for handler in statement.handlers:
        assert isinstance(handler.body, cst.IndentedBlock)
        *kept, release, reraise = handler.body.body
        releases += [release, reraise]
        handlers.append((handler, kept, reraise))
    dropped = []
    while handlers and not handlers[-1][1]:
        dropped.append(handlers.pop()[0])
    for line in releases:
        assert isinstance(line, cst.SimpleStatementLine)
        if _comments(line.leading_lines) or _has_comment(line.trailing_whitespace):
            return Unfixable("a comment on or above the release has nowhere to go")
    rest = [
        statement.body,
        *(part for _, kept, _ in handlers for part in kept),
        *orelse.body[:-1],
    ]
    if any(_rebinds_or_releases(part, site) for part in rest):
        return Unfixable(f"`{site.name}` is rebound or released again inside the `try`")
    after = list(orelse.body[:-1])
    if any(
        _comments(handler.leading_lines) or _block_comments(handler.body) for handler in dropped
    ):
        return Unfixable("a comment in a handler has nowhere to go")
    if not handlers:
        if _comments(statement.orelse.leading_lines) or _block_comments(orelse):
            return Unfixable("a comment in the `else` has nowhere to go")
        dissolved = _dissolved(statement)
        if isinstance(dissolved, Unfixable):
            return dissolved
        body, footer = dissolved
        if after:
            after[0] = _with_lines_above(after[0], footer)
            return [*body, *after], orelse.footer
        return body, footer
    smaller = statement.with_changes(
        handlers=[
            handler.with_changes(body=handler.body.with_changes(body=[*kept, reraise]))
            for handler, kept, reraise in handlers
        ],
        orelse=statement.orelse.with_changes(body=orelse.with_changes(body=after))
        if after
        else None,
    )
    if not after and (_comments(statement.orelse.leading_lines) or _block_comments(orelse)):
        return Unfixable("a comment in the `else` has nowhere to go")
    return [smaller], None


def _dissolved(
    statement: cst.Try,
) -> tuple[list[cst.BaseStatement], Sequence[cst.EmptyLine]] | Unfixable:
    """A ``try`` left with nothing but its body dissolves into the ``with``
    body. Comments above the ``try`` go above its first statement; comments
    after its last statement, at the end of the ``with`` body."""
    suite = statement.body
    if not isinstance(suite, cst.IndentedBlock):
        return Unfixable("a one-line `try` body")
    if _has_comment(suite.header):
        return Unfixable("a comment on the `try:` line has nowhere to go")
    body = list(suite.body)
    if statement.leading_lines:
        body[0] = _with_lines_above(body[0], statement.leading_lines)
    return body, suite.footer


def _with_lines_above(
    statement: cst.BaseStatement, lines: Sequence[cst.EmptyLine]
) -> cst.BaseStatement:
    if isinstance(statement, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        return statement.with_changes(leading_lines=[*lines, *statement.leading_lines])
    return statement


def _with_trailing_release(
    site: Site, block: cst.IndentedBlock | cst.Module, index: int
) -> _Region | Unfixable | None:
    """A later statement of the same block releases it."""
    exits: list[cst.SimpleStatementLine] = []
    for end in range(index + 1, len(block.body)):
        statement = block.body[end]
        if _is_release(statement, site):
            assert isinstance(statement, cst.SimpleStatementLine)
            region = list(block.body[index + 1 : end])
            if _comments(statement.leading_lines) or _has_comment(statement.trailing_whitespace):
                return Unfixable("a comment on or above the release has nowhere to go")
            if exits:
                region = [_without_statements(part, exits) for part in region]
            body = region or [cst.SimpleStatementLine([cst.Pass()])]
            return _Region(end + 1, body, frozenset(id(part) for part in body), exits=bool(exits))
        if _rebinds_or_releases(statement, site):
            found = _exit_releases(statement, site)
            if found:
                exits += found
                continue
            later = any(_is_release(after, site) for after in block.body[end + 1 :])
            return _obstacle(site, statement, released_later=later)
    return None


EXITS_CAVEAT = (
    " (unsafe: a release before a `return` or `raise` now runs once its value is computed)"
)


def _exit_releases(
    statement: cst.BaseStatement, site: Site
) -> list[cst.SimpleStatementLine] | None:
    """The releases inside ``statement`` when each one is followed, and only
    followed, in its block, by a ``return`` or ``raise`` that mentions
    neither the resource nor its pool, and nothing in it rebinds the name:
    the end of a block around it would release at the same point, once the
    value is computed. None when that is not so."""
    name = site.name
    if name is None:
        return None
    owner = site.produced.call.func
    names = {name}
    if isinstance(owner, cst.Attribute):
        root = owner.value
        while isinstance(root, cst.Attribute):
            root = root.value
        if isinstance(root, cst.Name):
            names.add(root.value)
    found: list[cst.SimpleStatementLine] = []
    for node in walk(statement):
        if name in _bound_names(node):
            return None
        if isinstance(node, cst.SimpleStatementSuite) and any(
            isinstance(sub, cst.Name) and sub.value == name for sub in walk(node)
        ):
            return None
        if not isinstance(node, cst.IndentedBlock):
            continue
        body = node.body
        for position, part in enumerate(body):
            if not _is_release(part, site):
                continue
            assert isinstance(part, cst.SimpleStatementLine)
            if position != len(body) - 2 or not _is_exit(body[position + 1], names):
                return None
            if _comments(part.leading_lines) or _has_comment(part.trailing_whitespace):
                return None
            found.append(part)
    releases = sum(
        1
        for node in walk(statement)
        if isinstance(node, cst.SimpleStatementLine) and _is_release(node, site)
    )
    return found if found and releases == len(found) else None


def _is_exit(statement: cst.BaseStatement, names: set[str]) -> bool:
    """``return X`` or ``raise E`` whose expressions do not mention ``names``."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    small = statement.body[0]
    if not isinstance(small, cst.Return | cst.Raise):
        return False
    return not any(isinstance(node, cst.Name) and node.value in names for node in walk(small))


def _without_statements(
    statement: cst.BaseStatement, removed: Sequence[cst.BaseStatement]
) -> cst.BaseStatement:
    """``statement`` without the given statements of its blocks."""
    ids = {id(part) for part in removed}

    class _Remover(cst.CSTTransformer):
        def leave_IndentedBlock(
            self, original: cst.IndentedBlock, updated: cst.IndentedBlock
        ) -> cst.IndentedBlock:
            kept = [
                new
                for old, new in zip(original.body, updated.body, strict=True)
                if id(old) not in ids
            ]
            return updated.with_changes(body=kept) if len(kept) != len(updated.body) else updated

    rebuilt = statement.visit(_Remover())
    assert isinstance(rebuilt, cst.BaseStatement)
    return rebuilt


def _first_line(statement: cst.BaseStatement, limit: int = 60) -> str:
    """The first line of a statement (a compound statement's header)."""
    if isinstance(statement, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        statement = statement.with_changes(leading_lines=())
    line = cst.Module(body=[]).code_for_node(statement).strip().split("\n")[0].rstrip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _obstacle(site: Site, statement: cst.BaseStatement, *, released_later: bool) -> Unfixable:
    """Why a statement after the acquisition stops the rewrite: it releases
    the resource (on some path, or besides a later release), or binds the
    name to something else."""
    released = any(
        isinstance(sub, cst.SimpleStatementLine) and _is_release(sub, site)
        for sub in walk(statement)
    )
    head = _first_line(statement)
    if released and released_later:
        where = "inside" if isinstance(statement, cst.BaseCompoundStatement) else "by"
        return Unfixable(
            f"`{site.name}` is also released {where} `{head}`, "
            "and a `with` would release it once, at its end"
        )
    if released:
        return Unfixable(
            f"`{site.name}` is released only inside `{head}`, on some of its paths, "
            "which a `with` cannot express"
        )
    return Unfixable(f"`{site.name}` is bound to something else by `{head}` before its release")


def release_in_finally(
    context: Context,
    site: Site,
    block: cst.IndentedBlock | cst.Module,
    index: int,
) -> Plan | None:
    """Without a context manager to use (or a safe one): the statements
    after the acquisition (``block.body[index]``; -1: from the start of
    ``block``) go into a ``try`` whose ``finally`` releases it,
    either a new one around the statements up to a trailing release (or a
    trailing ``if`` that only tests the resource before releasing it), or the
    later ``try``/``finally`` that already releases it, if it has no
    handlers to catch what the statements moved into it raise, or a later
    ``try`` whose handlers and ``else`` each release it, which gets the
    ``finally`` instead (around what comes before it too)."""
    exits: list[cst.SimpleStatementLine] = []
    for end in range(index + 1, len(block.body)):
        statement = block.body[end]
        if (
            _is_release(statement, site)
            or _releasing_try(statement, site)
            or _guarded_release(statement, site)
            or _released_each_way_only(statement, site)
        ):
            break
        if _rebinds_or_releases(statement, site):
            found = _exit_releases(statement, site)
            if not found:
                return None
            exits += found
    else:
        return None
    if exits and not _is_release(statement, site):
        return None
    region = [_without_statements(part, exits) for part in block.body[index + 1 : end]]
    each_way = _released_each_way_only(statement, site)
    if not region and not each_way:
        return None
    stripped: list[cst.BaseStatement] = []
    final_release: cst.BaseStatement = statement
    if each_way:
        assert isinstance(statement, cst.Try) and statement.orelse is not None
        inner = _without_releases_each_way(site, statement)
        if isinstance(inner, Unfixable) or _comments(inner[1]):
            return None
        stripped = inner[0]
        orelse = statement.orelse.body
        assert isinstance(orelse, cst.IndentedBlock)
        final_release = orelse.body[-1]
    # New blocks are indented by the module's default indentation.
    indent = context.tree.default_indent

    def build() -> list[cst.BaseStatement]:
        above: Sequence[cst.EmptyLine] = ()
        statements = list(region)
        if each_way:
            if not statements and len(stripped) == 1 and isinstance(stripped[0], cst.Try):
                # The ``try`` keeps its handlers and gets the ``finally``.
                return [stripped[0].with_changes(finalbody=_finally(final_release, indent))]
            statements += stripped
        first = statements[0]
        if isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement):
            above = first.leading_lines
            statements[0] = first.with_changes(leading_lines=())
        moved = [reindent_continuations(part, indent) for part in statements]
        if isinstance(statement, cst.Try) and not each_way:
            assert isinstance(statement.body, cst.IndentedBlock)
            kept = list(statement.body.body)
            kept[0] = _with_lines_above(kept[0], statement.leading_lines)
            body = statement.body.with_changes(body=[*moved, *kept])
            return [statement.with_changes(body=body, leading_lines=above)]
        protected = cst.Try(
            body=cst.IndentedBlock(moved),
            finalbody=_finally(final_release, indent),
            leading_lines=above,
        )
        return [protected]

    return Plan(
        code="",
        applicability=Applicability.UNSAFE if exits else Applicability.SAFE,
        description=f"release `{site.name}` in a `finally`" + (EXITS_CAVEAT if exits else ""),
        block=block,
        start=index + 1,
        end=end + 1,
        build=build,
    )


def _finally(release: cst.BaseStatement, indent: str) -> cst.Finally:
    """A ``finally`` holding ``release`` (a line, or an ``if`` around one)."""
    if isinstance(release, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        release = release.with_changes(leading_lines=_without_blank_lines(release.leading_lines))
    return cst.Finally(body=cst.IndentedBlock([reindent_continuations(release, indent)]))


def _guarded_release(statement: cst.BaseStatement, site: Site) -> bool:
    """``if conn is not None: conn.close()``: an ``if`` without ``else``
    whose test reads only the resource, and whose body only releases it."""
    if not isinstance(statement, cst.If) or statement.orelse is not None:
        return False
    body = statement.body
    if not isinstance(body, cst.IndentedBlock) or len(body.body) != 1:
        return False
    if not _is_release(body.body[0], site) or _block_comments(body):
        return False
    names = {
        node.value
        for node in walk(statement.test)
        if isinstance(node, cst.Name) and not _is_attribute_name(node, statement.test)
    }
    return site.name in names and names <= {site.name, "None", "True", "False"}


def _is_attribute_name(name: cst.Name, root: cst.CSTNode) -> bool:
    return any(isinstance(node, cst.Attribute) and node.attr is name for node in walk(root))


def _released_each_way_only(statement: cst.BaseStatement, site: Site) -> bool:
    """A ``try`` without ``finally`` whose handlers and ``else`` each end by
    releasing (see ``_released_each_way``)."""
    return (
        isinstance(statement, cst.Try)
        and statement.finalbody is None
        and _released_each_way(statement, site)
    )


def _releasing_try(statement: cst.BaseStatement, site: Site) -> bool:
    """A ``try``/``finally`` without handlers whose ``finally`` ends with the
    release, and that does not release or rebind it elsewhere."""
    if not isinstance(statement, cst.Try) or statement.handlers or statement.finalbody is None:
        return False
    if not isinstance(statement.body, cst.IndentedBlock):
        return False
    final = statement.finalbody.body.body
    return (
        bool(final)
        and _is_release(final[-1], site)
        and not _rebinds_or_releases(statement.body, site)
        and not any(_rebinds_or_releases(part, site) for part in final[:-1])
    )


def _is_release(statement: cst.CSTNode, site: Site) -> bool:
    """``name.close()``, ``await pool.release(name)``: a line releasing only it."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    small = statement.body[0]
    if not isinstance(small, cst.Expr):
        return False
    call, _ = unwrap_await(small.value)
    if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Attribute):
        return False
    method = call.func.attr.value
    receiver = call.func.value
    resource = site.type
    if isinstance(receiver, cst.Name) and receiver.value == site.name:
        return method in resource.release_methods and not call.args
    if method in resource.returned_by and len(call.args) == 1:
        argument = call.args[0].value
        owner = site.produced.call.func
        return (
            isinstance(argument, cst.Name)
            and argument.value == site.name
            and isinstance(owner, cst.Attribute)
            and code(owner.value) == code(receiver)
        )
    return False


def _rebinds_or_releases(node: cst.CSTNode, site: Site) -> bool:
    """Whether ``node`` binds the name to something else, or releases it."""
    name = site.name
    nodes = list(walk(node))
    # Both need the name written somewhere: the common case ends here.
    if not any(isinstance(sub, cst.Name) and sub.value == name for sub in nodes):
        return False
    for sub in nodes:
        if isinstance(sub, cst.SimpleStatementLine) and _is_release(sub, site):
            return True
        if name in _bound_names(sub):
            return True
    return False


def _bound_names(node: cst.CSTNode) -> set[str]:
    targets: list[cst.CSTNode] = []
    if isinstance(node, cst.Assign):
        targets = [target.target for target in node.targets]
    elif isinstance(node, cst.AnnAssign | cst.AugAssign | cst.NamedExpr | cst.For):
        targets = [node.target]
    elif isinstance(node, cst.AsName):
        targets = [node.name]
    elif isinstance(node, cst.Del):
        targets = [node.target]
    elif isinstance(node, cst.Global | cst.Nonlocal):
        return {item.name.value for item in node.names}
    return {name for target in targets for name in assigned_names(target)}


_CONTINUATION = re.compile(r"\\(\r\n|\r|\n)")


def reindent_continuations(statement: cst.BaseStatement, indent: str) -> cst.BaseStatement:
    """A statement moved ``indent`` deeper: its backslash-continued lines
    move with it. (Bracketed continuation lines and comments are indented
    relative to their block by libcst already; strings are left alone.)"""
    found = [
        node
        for node in _every_node(statement)
        if isinstance(node, cst.SimpleWhitespace) and "\\" in node.value
    ]
    for node in found:
        value = _CONTINUATION.sub(lambda match: "\\" + match.group(1) + indent, node.value)
        replaced = statement.deep_replace(node, cst.SimpleWhitespace(value))
        assert isinstance(replaced, cst.BaseStatement)
        statement = replaced
    return statement


def _every_node(node: cst.CSTNode) -> list[cst.CSTNode]:
    """Whitespace included, unlike ``syntax.walk``."""
    found = []
    stack = [node]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(current.children)
    return found


def without_leading_blank_lines(body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
    """A body does not start with blank lines (comments stay)."""
    first = body[0]
    if isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        lines = list(first.leading_lines)
        while lines and lines[0].comment is None:
            lines.pop(0)
        if len(lines) != len(first.leading_lines):
            return [first.with_changes(leading_lines=lines), *body[1:]]
    return body


def _without_blank_lines(lines: Sequence[cst.EmptyLine]) -> list[cst.EmptyLine]:
    return [line for line in lines if line.comment is not None]


def _comments(lines: object) -> bool:
    return isinstance(lines, list | tuple) and any(
        isinstance(line, cst.EmptyLine) and line.comment is not None for line in lines
    )


def _has_comment(whitespace: cst.TrailingWhitespace) -> bool:
    return whitespace.comment is not None


def _block_comments(block: cst.BaseSuite) -> bool:
    """A comment on the block's header line or after its last statement."""
    if not isinstance(block, cst.IndentedBlock):
        return False
    return _has_comment(block.header) or _comments(block.footer)


def protected(region: list[cst.BaseStatement], release: cst.BaseExpression, indent: str) -> cst.Try:
    """``region`` in a ``try`` whose ``finally`` runs ``release``, one level
    deeper. Blank lines above its first statement go above the ``try``;
    comments stay with their statement."""
    region = list(region)
    above: Sequence[cst.EmptyLine] = ()
    first = region[0] if region else None
    if isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        lines = list(first.leading_lines)
        blank = 0
        while blank < len(lines) and lines[blank].comment is None:
            blank += 1
        above = lines[:blank]
        region[0] = first.with_changes(leading_lines=lines[blank:])
    moved = [reindent_continuations(part, indent) for part in region]
    return cst.Try(
        body=cst.IndentedBlock(
            without_leading_blank_lines(moved or [cst.SimpleStatementLine([cst.Pass()])])
        ),
        finalbody=cst.Finally(
            body=cst.IndentedBlock([cst.SimpleStatementLine([cst.Expr(release)])])
        ),
        leading_lines=above,
    )


def callees(context: Context, function: FunctionInfo) -> dict[str, cst.FunctionDef]:
    """The module's functions by name, and the methods of the function's
    class as ``.name``: what ``lifetime`` looks into for a function that
    keeps what it is given."""
    found = {
        function.name: function.node
        for function in context.module.functions
        if function.cls is None and function.parent is None
    }
    cls = function.cls
    if cls is not None:
        found.update({f".{name}": method.node for name, method in cls.methods.items()})
    return found

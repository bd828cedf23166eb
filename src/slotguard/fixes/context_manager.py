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

The first releases on exactly the paths the code already released on; the
second adds the release on the paths that skipped it (an early ``return``, an
exception, a ``yield`` the consumer never resumes), which is what the
findings it fixes (SG201, SG202, SG203) ask for. Everything else, the fix
declines with a reason that the ``fix`` summary shows.
"""

from __future__ import annotations

import libcst as cst

from slotguard.fixes.base import Plan, Unfixable
from slotguard.flow.held import FunctionFlow, Site, SiteOutcome
from slotguard.model.vocabulary import Kind
from slotguard.report.diagnostic import Applicability
from slotguard.rules.base import Context, RawFinding
from slotguard.rules.common import code, flows
from slotguard.syntax import assigned_names, children, unwrap_await, walk


def plan_context_manager(context: Context, finding: RawFinding) -> Plan | Unfixable:
    located = _site_of(context, finding.node)
    if located is None:
        return Unfixable("the acquisition is not one the flow analysis tracks")
    flow, outcome = located
    site = outcome.site
    if site.name is None:
        return Unfixable("the acquired value is not bound to a name")
    if outcome.handed_off:
        # A ``with`` would release it under its new owner's feet.
        return Unfixable(f"`{site.name}` is handed to another owner on some path")
    manager = _context_manager(site)
    if isinstance(manager, Unfixable):
        return manager
    expression, is_async, applicability = manager
    if is_async and not flow.function.is_async:
        return Unfixable("the context manager is asynchronous but the function is not")
    parents = _parents(flow.function.node)
    statement = _acquiring_statement(site, parents)
    if statement is None:
        return Unfixable(f"`{site.name} = ...` is not a statement of its own")
    block = parents.get(id(statement))
    if not isinstance(block, cst.IndentedBlock | cst.Module):
        return Unfixable(f"`{site.name} = ...` is not a statement of its own")
    index = _index_of(block, statement)
    region = _with_try_finally(site, block, index) or _with_trailing_release(site, block, index)
    if isinstance(region, Unfixable):
        return region
    if region is None:
        return Unfixable(
            f"`{site.name}` is not released in the `finally` of a later `try` of its block, "
            "nor by a later statement of its block"
        )
    end, body = region
    keyword = "async with" if is_async else "with"
    header = f"{keyword} {code(expression)} as {site.name}"
    replacement = cst.With(
        items=[cst.WithItem(expression, asname=cst.AsName(cst.Name(site.name)))],
        # A comment on the acquisition line stays on the ``with`` line.
        body=cst.IndentedBlock(body=body, header=statement.trailing_whitespace),
        asynchronous=cst.Asynchronous() if is_async else None,
        leading_lines=statement.leading_lines,
    )
    return Plan(
        code=finding.rule.code,
        applicability=applicability,
        description=f"rewrite as `{header}:`",
        block=block,
        start=index,
        end=end,
        replacement=[replacement],
    )


def _site_of(context: Context, node: cst.CSTNode) -> tuple[FunctionFlow, SiteOutcome] | None:
    for flow in flows(context):
        outcome = flow.outcome_for(node)
        if outcome is not None:
            return flow, outcome
    return None


def _context_manager(site: Site) -> tuple[cst.BaseExpression, bool, Applicability] | Unfixable:
    """The expression to enter, whether with ``async with``, and how safe."""
    resource = site.type
    if not resource.with_releases:
        return Unfixable(f"`with` does not release a {resource.kind.value}: {resource.with_note}")
    produced = site.produced
    call = produced.call
    applicability = Applicability.SAFE
    method = produced.method
    if method is not None and method.context_manager and isinstance(call.func, cst.Attribute):
        # ``getconn``/``putconn`` becomes ``connection()``, which also ends the
        # transaction at the end of the block: a change of behaviour.
        call = call.with_changes(func=call.func.with_changes(attr=cst.Name(method.context_manager)))
        applicability = Applicability.UNSAFE
    keep_await = resource.kind is Kind.CONNECTION and isinstance(produced.expression, cst.Await)
    expression: cst.BaseExpression = cst.Await(call) if keep_await else call
    return expression, resource.is_async, applicability


def _parents(root: cst.CSTNode) -> dict[int, cst.CSTNode]:
    parents: dict[int, cst.CSTNode] = {}
    for node in walk(root):
        for child in children(node):
            parents[id(child)] = node
    return parents


def _acquiring_statement(
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


def _index_of(block: cst.IndentedBlock | cst.Module, statement: cst.CSTNode) -> int:
    for index, candidate in enumerate(block.body):
        if candidate is statement:
            return index
    raise ValueError("statement not in its block")


def _with_try_finally(
    site: Site, block: cst.IndentedBlock | cst.Module, index: int
) -> tuple[int, list[cst.BaseStatement]] | Unfixable | None:
    """A later statement of the block is a ``try`` whose ``finally`` ends with
    the release; what comes between joins the ``with`` body (so an early
    ``return`` before the ``try`` releases too)."""
    for position in range(index + 1, len(block.body)):
        candidate = block.body[position]
        if isinstance(candidate, cst.Try) and candidate.finalbody is not None:
            final = candidate.finalbody.body.body
            if final and _is_release(final[-1], site):
                break
        if _rebinds_or_releases(candidate, site):
            return None
    else:
        return None
    inner = _without_final_release(site, candidate)
    if isinstance(inner, Unfixable):
        return inner
    return position + 1, [*block.body[index + 1 : position], *inner]


def _without_final_release(site: Site, statement: cst.Try) -> list[cst.BaseStatement] | Unfixable:
    """The ``try`` without the release that ends its ``finally``: the
    ``finally`` shrinks, or disappears, or the whole ``try`` dissolves."""
    assert statement.finalbody is not None
    finally_block = statement.finalbody.body
    final = list(finally_block.body)
    release = final[-1]
    assert isinstance(release, cst.SimpleStatementLine)
    if _comments(release.leading_lines) or _has_comment(release.trailing_whitespace):
        return Unfixable("a comment on the release line has nowhere to go")
    protected = [statement.body, *statement.handlers, statement.orelse, *final[:-1]]
    if any(part is not None and _rebinds_or_releases(part, site) for part in protected):
        return Unfixable(f"`{site.name}` is rebound or released again inside the `try`")
    remaining = final[:-1]
    if remaining:
        shortened = finally_block.with_changes(body=remaining)
        return [statement.with_changes(finalbody=statement.finalbody.with_changes(body=shortened))]
    if _block_comments(finally_block) or _comments(statement.finalbody.leading_lines):
        return Unfixable("a comment in the `finally` has nowhere to go")
    if statement.handlers:
        return [statement.with_changes(finalbody=None)]
    # A ``try`` with only a ``finally`` (and perhaps an ``else``) dissolves
    # into the ``with`` body: without handlers, ``else`` runs exactly when the
    # body did not raise, that is, right after it.
    suites = [statement.body]
    if statement.orelse is not None:
        if _comments(statement.orelse.leading_lines):
            return Unfixable("a comment before `else` has nowhere to go")
        suites.append(statement.orelse.body)
    body: list[cst.BaseStatement] = []
    for suite in suites:
        if not isinstance(suite, cst.IndentedBlock):
            return Unfixable("a one-line `try` or `else` body")
        if _block_comments(suite):
            return Unfixable("a comment on the `try` or `else` line has nowhere to go")
        body += suite.body
    first = body[0]
    if statement.leading_lines and isinstance(
        first, cst.SimpleStatementLine | cst.BaseCompoundStatement
    ):
        body[0] = first.with_changes(leading_lines=[*statement.leading_lines, *first.leading_lines])
    return body


def _with_trailing_release(
    site: Site, block: cst.IndentedBlock | cst.Module, index: int
) -> tuple[int, list[cst.BaseStatement]] | Unfixable | None:
    """A later statement of the same block releases it."""
    for end in range(index + 1, len(block.body)):
        statement = block.body[end]
        if _is_release(statement, site):
            assert isinstance(statement, cst.SimpleStatementLine)
            if _comments(statement.leading_lines) or _has_comment(statement.trailing_whitespace):
                return Unfixable("a comment on the release line has nowhere to go")
            region = list(block.body[index + 1 : end])
            if any(_rebinds_or_releases(part, site) for part in region):
                return Unfixable(f"`{site.name}` is rebound or released again before the release")
            return end + 1, region or [cst.SimpleStatementLine([cst.Pass()])]
        if _rebinds_or_releases(statement, site):
            return None
    return None


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
    for sub in walk(node):
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

"""SG105: a cleanup generator driven by hand is entered as the context
manager it is written to be.

    db = next(get_db())                  with contextlib.contextmanager(get_db)() as db:
    db.add(order)                  →         db.add(order)
    db.commit()                              db.commit()

    async for session in get_session():  async with contextlib.asynccontextmanager(
        await session.merge(row)                 get_session)() as session:
        break                         →      await session.merge(row)

``next``/``__next__`` becomes ``contextlib.contextmanager``, ``anext`` and
``__anext__`` (awaited) ``contextlib.asynccontextmanager``, with the same
arguments. The block holds the statements up to the last one of the block
that uses what the generator gave, or what was computed from it, as SG102's
fix does (``slotguard.fixes.never_released``); a loop left by its trailing
``break`` becomes the block that was its body.

The fix declines when the value is used, or what was loaded through it,
after the block (the generator has closed it by then), when it leaves the
function, when the generator is kept in a variable, for a loop with an
``else``, another ``break`` or a ``continue``, and for a generator of the
module that yields more than once or swallows the exception thrown into it at
its ``yield`` (``contextmanager`` would then suppress it). It is unsafe: the
generator's cleanup now runs at the end of the block, and an exception raised
in the block is thrown into it at its ``yield``, as the framework would.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from slotguard.analysis.columns import column_test
from slotguard.analysis.infer import FunctionInfo
from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.context_manager import (
    callees,
    function_parents,
    index_of,
    without_leading_blank_lines,
)
from slotguard.fixes.imports import usable_spelling
from slotguard.fixes.lifetime import Lifetime, lifetime
from slotguard.fixes.never_released import Where, inline, with_plan
from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, RawFinding
from slotguard.rules.common import code
from slotguard.syntax import SCOPE_NODES, children, dotted_name, walk

_SYNC = ("next", "__next__")
_ASYNC = ("anext", "__anext__")
UNSAFE = (
    " (unsafe: its cleanup runs there, and an exception in the block is thrown into it "
    "at its `yield`)"
)


class DependencyConsumedByHandFix(Fixer):
    code = "SG105"
    applicability = Applicability.UNSAFE
    summary = (
        "Enter the generator with `contextlib.contextmanager(get_db)()` "
        "(`asynccontextmanager` for an async one) up to the last use of what it gave."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        function = _enclosing_function(context, finding.node)
        if function is None:
            return Unfixable("at module level, the block would hold the rest of the module")
        parents = function_parents(context, function.node)
        parent = parents.get(id(finding.node))
        if isinstance(parent, cst.For) and parent.iter is finding.node:
            return _loop(context, finding, function, parent, parents)
        if isinstance(finding.node, cst.Call):
            return _advanced(context, finding, function, finding.node, parents)
        return Unfixable("the generator is not driven in a shape the fix recognises")


def _enclosing_function(context: Context, node: cst.CSTNode) -> FunctionInfo | None:
    """The innermost function holding ``node`` (functions are listed outer
    first)."""
    found: FunctionInfo | None = None
    for function in context.module.functions:
        if any(sub is node for sub in walk(function.node)):
            found = function
    return found


def _advanced(
    context: Context,
    finding: RawFinding,
    function: FunctionInfo,
    call: cst.Call,
    parents: dict[int, cst.CSTNode],
) -> Plan | Unfixable:
    """``next(get_db())``, ``await anext(get_db())``, ``get_db().__next__()``."""
    func = call.func
    if isinstance(func, cst.Name) and func.value in (*_SYNC, *_ASYNC):
        if len(call.args) != 1:
            return Unfixable(f"`{func.value}` is given a default")
        generator, how = call.args[0].value, func.value
    elif isinstance(func, cst.Attribute) and func.attr.value in (*_SYNC, *_ASYNC):
        generator, how = func.value, func.attr.value
    else:
        return Unfixable(f"`{code(func)}` sends a value into the generator")
    if not isinstance(generator, cst.Call):
        return Unfixable(
            f"the generator is kept in `{code(generator)}`, which something else may resume"
        )
    is_async = how in _ASYNC
    driven: cst.BaseExpression = call
    if is_async:
        awaited = parents.get(id(call))
        if not isinstance(awaited, cst.Await):
            return Unfixable(f"`{code(call)}` is not awaited where it is called")
        driven = awaited
    refused = _refused(context, generator)
    if refused is not None:
        return refused
    manager = _manager(context, generator, is_async)
    if isinstance(manager, Unfixable):
        return manager
    expression, imports = manager
    where = _where(driven, function, parents)
    if isinstance(where, Unfixable):
        return where
    life = lifetime(
        function.node,
        where.block,
        where.index,
        where.name,
        _kind(context, generator),
        parents,
        first=where.opening,
        callees=callees(context, function),
        is_column=column_test(context.module),
    )
    if isinstance(life, Unfixable):
        return life
    keyword = "async with" if is_async else "with"
    return with_plan(
        context,
        finding.rule.code,
        where,
        where.opening,
        life.end,
        expression,
        is_async=is_async,
        imports=imports,
        description=f"enter `{code(generator)}` with `{keyword} {code(expression)} "
        f"as {where.name}:` up to its last use" + UNSAFE,
    )


def _where(
    driven: cst.BaseExpression, function: FunctionInfo, parents: dict[int, cst.CSTNode]
) -> Where | Unfixable:
    """``name = next(get_db())`` on a line of its own, or the statement that
    uses it, under a new name."""
    assignment = parents.get(id(driven))
    line = parents.get(id(assignment)) if assignment is not None else None
    block = parents.get(id(line)) if line is not None else None
    if (
        isinstance(assignment, cst.Assign | cst.AnnAssign)
        and isinstance(line, cst.SimpleStatementLine)
        and len(line.body) == 1
        and isinstance(block, cst.IndentedBlock | cst.Module)
    ):
        targets = (
            [target.target for target in assignment.targets]
            if isinstance(assignment, cst.Assign)
            else [assignment.target]
        )
        if len(targets) == 1 and isinstance(targets[0], cst.Name):
            return Where(line, block, index_of(block, line), targets[0].value, None)
    return inline(driven, function.node, ["db", "session"], parents)


def _loop(
    context: Context,
    finding: RawFinding,
    function: FunctionInfo,
    loop: cst.For,
    parents: dict[int, cst.CSTNode],
) -> Plan | Unfixable:
    """``for db in get_db(): ... break``: the body, entered once."""
    generator = loop.iter
    block = parents.get(id(loop))
    if not isinstance(generator, cst.Call) or not isinstance(block, cst.IndentedBlock | cst.Module):
        return Unfixable("the loop is not over a call of the generator")
    if loop.orelse is not None:
        return Unfixable("the loop has an `else`, which runs only when it is not left by `break`")
    if not isinstance(loop.target, cst.Name):
        return Unfixable(f"the loop unpacks what the generator gives into `{code(loop.target)}`")
    if not isinstance(loop.body, cst.IndentedBlock):
        return Unfixable("a one-line loop body")
    body = list(loop.body.body)
    last = body[-1]
    if (
        isinstance(last, cst.SimpleStatementLine)
        and len(last.body) == 1
        and isinstance(last.body[0], cst.Break)
    ):
        if last.trailing_whitespace.comment is not None or any(
            line.comment is not None for line in last.leading_lines
        ):
            return Unfixable("a comment on or above the `break` has nowhere to go")
        body = body[:-1]
    jump = _own_jump(body)
    if jump is not None:
        return Unfixable(f"the loop is left by a `{jump}` that a `with` cannot express")
    refused = _refused(context, generator)
    if refused is not None:
        return refused
    is_async = loop.asynchronous is not None
    manager = _manager(context, generator, is_async)
    if isinstance(manager, Unfixable):
        return manager
    expression, imports = manager
    name = loop.target.value
    index = index_of(block, loop)
    life = lifetime(
        function.node,
        block,
        index,
        name,
        _kind(context, generator),
        parents,
        first=body,
        callees=callees(context, function),
        extend=False,
    )
    if isinstance(life, Unfixable):
        return life
    return _loop_plan(context, finding, loop, block, index, body, expression, imports, life)


def _loop_plan(
    context: Context,
    finding: RawFinding,
    loop: cst.For,
    block: cst.IndentedBlock | cst.Module,
    index: int,
    body: Sequence[cst.BaseStatement],
    expression: cst.BaseExpression,
    imports: Sequence[cst.SimpleStatementLine],
    life: Lifetime,
) -> Plan:
    assert isinstance(loop.body, cst.IndentedBlock) and isinstance(loop.target, cst.Name)
    name = loop.target.value
    suite = loop.body

    def build() -> list[cst.BaseStatement]:
        statements = list(body) or [cst.SimpleStatementLine([cst.Pass()])]
        entered = cst.With(
            items=[cst.WithItem(expression, asname=cst.AsName(cst.Name(name)))],
            body=suite.with_changes(body=without_leading_blank_lines(statements)),
            asynchronous=loop.asynchronous,
            leading_lines=loop.leading_lines,
        )
        return [entered]

    keyword = "async with" if loop.asynchronous is not None else "with"
    return Plan(
        code=finding.rule.code,
        applicability=Applicability.UNSAFE,
        description=f"enter `{code(loop.iter)}` with `{keyword} {code(expression)} as {name}:` "
        "instead of a loop left after one turn" + UNSAFE,
        block=block,
        start=index,
        end=life.end,
        build=build,
        imports=imports,
    )


def _own_jump(body: Sequence[cst.BaseStatement]) -> str | None:
    """A ``break`` or ``continue`` of the loop itself (not of a loop inside it)."""
    stack: list[cst.CSTNode] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Break | cst.Continue):
            return type(node).__name__.lower()
        if isinstance(node, (cst.For, cst.While, *SCOPE_NODES)):
            continue
        stack.extend(children(node))
    return None


def _manager(
    context: Context, generator: cst.Call, is_async: bool
) -> tuple[cst.BaseExpression, list[cst.SimpleStatementLine]] | Unfixable:
    """``contextlib.contextmanager(get_db)(...)``, and the import it needs."""
    name = "asynccontextmanager" if is_async else "contextmanager"
    spelled, imports = usable_spelling(context.tree, f"contextlib.{name}")
    wrapped = cst.Call(cst.parse_expression(spelled), [cst.Arg(generator.func.deep_clone())])
    return cst.Call(wrapped, generator.args), imports


def _refused(context: Context, generator: cst.Call) -> Unfixable | None:
    """Why a generator of the module cannot become a context manager: it
    yields more than once, or swallows what is thrown into it at its
    ``yield``."""
    name = dotted_name(generator.func)
    function = context.module.function_named(name) if name is not None else None
    if function is None:
        return None
    yields = [node for node in function.scope.of_type(cst.Yield) if isinstance(node, cst.Yield)]
    if len(yields) != 1:
        return Unfixable(f"`{name}` yields more than once, and a context manager yields once")
    parents = function_parents(context, function.node)
    current = parents.get(id(yields[0]))
    inside: cst.CSTNode = yields[0]
    while current is not None and current is not function.node:
        if isinstance(current, cst.For | cst.While) and inside is not current.orelse:
            return Unfixable(f"`{name}` yields in a loop, and a context manager yields once")
        if isinstance(current, cst.Try) and inside is current.body:
            for handler in current.handlers:
                if not _reraises(handler):
                    return Unfixable(
                        f"`{name}` catches what is raised at its `yield` without raising it "
                        "again: as a context manager it would suppress the exception"
                    )
        inside, current = current, parents.get(id(current))
    return None


def _reraises(handler: cst.ExceptHandler) -> bool:
    if not isinstance(handler.body, cst.IndentedBlock) or not handler.body.body:
        return False
    last = handler.body.body[-1]
    return (
        isinstance(last, cst.SimpleStatementLine)
        and len(last.body) == 1
        and isinstance(last.body[0], cst.Raise)
    )


def _kind(context: Context, generator: cst.Call) -> Kind:
    """What the generator gives, for what counts as loaded through it: a
    session unless the module says otherwise."""
    name = dotted_name(generator.func)
    function = context.module.function_named(name) if name is not None else None
    yielded = function.yielded_type() if function is not None else None
    return yielded.kind if yielded is not None else Kind.SESSION

"""SG106: a unit of work that uses a ``scoped_session`` registry removes it
in a ``finally`` around what it does.

    @celery.task                          @celery.task
    def sync_orders():                    def sync_orders():
        rows = Session.execute(...)  →        try:
        Session.commit()                          rows = Session.execute(...)
                                                  Session.commit()
                                              finally:
                                                  Session.remove()

A task, a scheduled job, a thread or a command is the function itself (its
docstring stays first); for a worker loop each turn is a unit, so the
``finally`` goes around the body of its loop. Where the unit is a request
(a handler or middleware), the framework's teardown hook removes it for
every request: a Flask application of the module gets a
``@app.teardown_appcontext`` function that calls ``remove()``.

The fix declines for a request of an application the module does not
create (or not a Flask one: FastAPI and Starlette have no teardown hook),
for an asynchronous registry in a synchronous function, and for a registry
made per call (SG106's verdict on it is about that registry alone). It is
unsafe: the unit's session is closed when it ends, where it used to be kept
for the next unit of the same thread, which saw what it left (objects,
an open transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.analysis.registries import Use, registries
from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.context_manager import reindent_continuations
from slotguard.fixes.imports import bound_names
from slotguard.fixes.lifetime import escapes
from slotguard.model.units import Unit
from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, RawFinding
from slotguard.syntax import SCOPE_NODES, children, dotted_name, walk

UNSAFE = (
    " (unsafe: the unit's session is closed when it ends, where the next unit of its "
    "thread used to inherit it)"
)
_FUNCTION_UNITS = (Unit.TASK, Unit.JOB, Unit.THREAD, Unit.COMMAND)
_REQUEST_UNITS = (Unit.REQUEST, Unit.MIDDLEWARE)
_FLASK_APPLICATIONS = frozenset({"flask.Flask", "flask.app.Flask"})


class ScopedSessionNotRemovedFix(Fixer):
    code = "SG106"
    applicability = Applicability.UNSAFE
    summary = (
        "Remove the registry in a `finally` around the unit of work (each turn of a "
        "worker loop), or in a Flask `teardown_appcontext` hook for requests."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        use = next((u for u in registries(context.module).uses if u.node is finding.node), None)
        if use is None:
            return Unfixable("a registry made for one call: remove it where that call ends")
        remove = _remove_call(use)
        awaited = isinstance(remove, cst.SimpleStatementLine) and _awaited(remove)
        if awaited and not use.function.is_async:
            return Unfixable("the registry is asynchronous but the unit is not")
        if isinstance(remove, Unfixable):
            return remove
        if use.unit in _FUNCTION_UNITS:
            return _around_the_function(context, finding, use, remove)
        if use.unit is Unit.LOOP:
            return _around_each_turn(context, finding, use, remove)
        return _teardown_hook(context, finding, use, remove)


def _remove_call(use: Use) -> cst.SimpleStatementLine | Unfixable:
    """``Session.remove()``, awaited for an ``async_scoped_session``."""
    try:
        target = cst.parse_expression(use.shown)
    except cst.ParserSyntaxError:
        return Unfixable(f"`{use.shown}` is not an expression the fix can call `remove()` on")
    registry = use.function.scope.type_of(target)
    call: cst.BaseExpression = cst.Call(cst.Attribute(target, cst.Name("remove")))
    if registry is not None and registry.is_async:
        call = cst.Await(call)
    return cst.SimpleStatementLine([cst.Expr(call)])


def _escaping(use: Use, statements: list[cst.BaseStatement]) -> Unfixable | None:
    """What the unit loads through the registry must not outlive it: once
    removed, its session is closed and its objects detached."""
    root = use.shown.split(".")[0].split("(")[0]
    return escapes(statements, root, Kind.SESSION, use.function.node)


def _awaited(line: cst.SimpleStatementLine) -> bool:
    small = line.body[0]
    return isinstance(small, cst.Expr) and isinstance(small.value, cst.Await)


def _protected(
    statements: list[cst.BaseStatement], remove: cst.BaseStatement, indent: str
) -> cst.Try:
    first = statements[0]
    above: Sequence[cst.EmptyLine] = ()
    if isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        above = first.leading_lines
        statements = [first.with_changes(leading_lines=()), *statements[1:]]
    return cst.Try(
        body=cst.IndentedBlock([reindent_continuations(part, indent) for part in statements]),
        finalbody=cst.Finally(body=cst.IndentedBlock([remove])),
        leading_lines=above,
    )


def _plan(
    finding: RawFinding,
    block: cst.IndentedBlock | cst.Module,
    start: int,
    end: int,
    build: Callable[[], list[cst.BaseStatement]],
    description: str,
) -> Plan:
    return Plan(
        code=finding.rule.code,
        applicability=Applicability.UNSAFE,
        description=description + UNSAFE,
        block=block,
        start=start,
        end=end,
        build=build,
    )


def _around_the_function(
    context: Context, finding: RawFinding, use: Use, remove: cst.BaseStatement
) -> Plan | Unfixable:
    body = use.function.node.body
    if not isinstance(body, cst.IndentedBlock):
        return Unfixable("a one-line function")
    start = 1 if _is_docstring(body.body[0]) else 0
    statements = list(body.body[start:])
    if not statements:
        return Unfixable("the function holds only its docstring")
    escape = _escaping(use, statements)
    if escape is not None:
        return escape
    indent = context.tree.default_indent
    shown = cst.Module([]).code_for_node(remove).strip()
    return _plan(
        finding,
        body,
        start,
        len(body.body),
        lambda: [_protected(statements, remove, indent)],
        f"call `{shown}` in a `finally` around the {use.unit.value} `{use.function.name}`",
    )


def _around_each_turn(
    context: Context, finding: RawFinding, use: Use, remove: cst.BaseStatement
) -> Plan | Unfixable:
    loop = _loop_holding(use.function, finding.node)
    if loop is None or not isinstance(loop.body, cst.IndentedBlock):
        return Unfixable("the registry is used outside the loop whose turns are the units")
    block = loop.body
    statements = list(block.body)
    indent = context.tree.default_indent
    shown = cst.Module([]).code_for_node(remove).strip()
    if any(_continues(statement) for statement in statements):
        return Unfixable("a `continue` in the loop would skip the end of the turn")
    escape = _escaping(use, statements)
    if escape is not None:
        return escape
    return _plan(
        finding,
        block,
        0,
        len(statements),
        lambda: [_protected(statements, remove, indent)],
        f"call `{shown}` in a `finally` around each turn of the loop in `{use.function.name}`",
    )


def _teardown_hook(
    context: Context, finding: RawFinding, use: Use, remove: cst.BaseStatement
) -> Plan | Unfixable:
    if use.unit not in _REQUEST_UNITS:
        return Unfixable(f"a {use.unit.value} has no end the fix can find")
    module = context.module
    tree = context.tree
    for index, statement in enumerate(tree.body):
        application = _flask_application(module, statement)
        if application is None:
            continue
        taken = bound_names(tree)
        name = next(
            candidate
            for candidate in ("remove_session", *(f"remove_session_{n}" for n in range(2, 100)))
            if not taken[candidate]
        )
        hook = cst.parse_statement(
            f"@{application}.teardown_appcontext\n"
            f"def {name}(exception=None):\n"
            f"{tree.default_indent}pass\n",
            config=tree.config_for_parsing,
        )
        assert isinstance(hook, cst.FunctionDef) and isinstance(hook.body, cst.IndentedBlock)
        hook = hook.with_changes(
            body=hook.body.with_changes(body=[remove]),
            leading_lines=[cst.EmptyLine(), cst.EmptyLine()],
        )
        shown = cst.Module([]).code_for_node(remove).strip()
        return _plan(
            finding,
            tree,
            index,
            index + 1,
            _adding(statement, hook),
            f"call `{shown}` in a `@{application}.teardown_appcontext` hook, after every request",
        )
    return Unfixable(
        "the requests are not a Flask application's of this module, and the fix writes "
        "teardown hooks only for those"
    )


def _adding(
    statement: cst.BaseStatement, hook: cst.BaseStatement
) -> Callable[[], list[cst.BaseStatement]]:
    return lambda: [statement, hook]


def _flask_application(module: ModuleInfo, statement: cst.BaseStatement) -> str | None:
    """``app`` for ``app = Flask(__name__)`` at module level."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if not isinstance(small, cst.Assign) or len(small.targets) != 1:
        return None
    target = small.targets[0].target
    if not isinstance(target, cst.Name) or not isinstance(small.value, cst.Call):
        return None
    name = dotted_name(small.value.func)
    qualified = module.qualify(name) if name is not None else None
    return target.value if qualified in _FLASK_APPLICATIONS else None


def _loop_holding(function: FunctionInfo, node: cst.CSTNode) -> cst.For | cst.While | None:
    body = function.node.body
    if not isinstance(body, cst.IndentedBlock):
        return None
    for statement in body.body:
        if isinstance(statement, cst.For | cst.While) and any(
            sub is node for sub in walk(statement)
        ):
            return statement
    return None


def _continues(statement: cst.BaseStatement) -> bool:
    """A ``continue`` of the loop itself (not of a loop inside it)."""
    stack: list[cst.CSTNode] = [statement]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Continue):
            return True
        if isinstance(node, (cst.For, cst.While, *SCOPE_NODES)):
            continue
        stack.extend(children(node))
    return False


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )

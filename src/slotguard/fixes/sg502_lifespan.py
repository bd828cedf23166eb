"""SG502: an application's ``on_event`` startup and shutdown handlers become
one lifespan context manager that closes the pool the startup creates.

    app = FastAPI()                          @contextlib.asynccontextmanager
                                             async def lifespan(app):
    @app.on_event("startup")                     app.state.pool = await create_pool(DSN)
    async def open_pool():            →          try:
        app.state.pool = await create_pool(DSN)      yield
                                                 finally:
    @app.on_event("shutdown")                        await app.state.cache.close()
    async def close_cache():                         await app.state.pool.close()
        await app.state.cache.close()
                                             app = FastAPI(lifespan=lifespan)

Every ``on_event`` handler of the application moves, in the order the
application would run it: the startup bodies before ``yield``, the shutdown
bodies in the ``finally``, then the closes the rule found missing, spelled as
the model releases each pool. The lifespan is defined just before the
application is created, and its parameter takes the application's name, so
``app.state`` writes reach the same object. The first startup handler's
``global`` statements stay where they are; the other handlers' move to the
top of the lifespan, because one function cannot declare a name global
after using it.

The fix is unsafe: a lifespan replaces the application's ``on_event``
handlers, so handlers other modules register on it (an included router's)
would no longer run, code elsewhere that calls a handler by name would break,
and a failing shutdown step no longer stops at the handler boundary.

It declines unless the application is a FastAPI or Starlette application
created once, at module level of the same module, without ``lifespan``,
``on_startup``, ``on_shutdown`` or ``**`` arguments; every hook of the
application in the module is an ``on_event`` decorator of a module-level
function with no other decorator, no parameters, no ``return`` and no other
use of its name; the handlers do not give one name different meanings (a
local in one, a global in another); and the pool is kept where an
expression without calls reaches it. The close is the model's release,
awaited for an asynchronous pool; aiopg-style pools, whose ``close()`` only
starts closing, also get ``await pool.wait_closed()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.analysis.pools import Hook, Lifecycle, PoolSite, StorageKind, closing_key, lifecycle
from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.context_manager import reindent_continuations
from slotguard.fixes.imports import import_line, spelling
from slotguard.model.lifecycle import HOOK_LISTS, HOOK_METHODS, Phase
from slotguard.rules.base import Context, RawFinding
from slotguard.rules.common import code
from slotguard.syntax import assigned_names, dotted_name, walk, walk_scope

LIFESPAN_APPLICATIONS = frozenset(
    {"fastapi.FastAPI", "fastapi.applications.FastAPI", "starlette.applications.Starlette"}
)
"""Applications whose ``lifespan=`` takes ``asynccontextmanager(f)`` with
``f(app)``, and whose lifespan replaces their ``on_event`` handlers."""

REPLACED_BY_LIFESPAN = ("lifespan", "on_startup", "on_shutdown")
"""Constructor arguments a lifespan cannot be added beside."""

WAIT_CLOSED = frozenset(
    {"aiopg.Pool", "aiomysql.Pool", "asyncmy.Pool", "aiopg.sa.Engine", "aiomysql.sa.Engine"}
)
"""Asynchronous pools whose ``close()`` is not awaited: it returns at once,
and ``await pool.wait_closed()`` waits for the connections to close."""

_REGISTERING = frozenset(
    {*(method.name for method in HOOK_METHODS), *HOOK_LISTS, "lifespan_context", "router"}
)
"""Attributes of an application through which hooks are registered or replaced."""

_STARLETTE_POSITIONAL_LIMIT = 4
"""``Starlette(debug, routes, middleware, exception_handlers, on_startup, ...)``:
a fifth positional argument is ``on_startup``."""


@dataclass(frozen=True, slots=True)
class _Handler:
    function: FunctionInfo
    phase: Phase
    index: int
    """Its statement's position in the module body."""


@dataclass(frozen=True, slots=True)
class _Application:
    name: str
    index: int
    statement: cst.SimpleStatementLine
    call: cst.Call


class StartupToLifespanFix(Fixer):
    code = "SG502"
    applicability = Applicability.UNSAFE
    summary = (
        "Move the application's startup and shutdown handlers into a lifespan context "
        "manager that closes the pool after `yield`."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        module = context.module
        found = lifecycle(module)
        site = _site_of(found, finding.node)
        if site is None or site.function is None:
            return Unfixable("the pool is not created where the fix can find it")
        hook = next((h for h in found.hooks_of(site.function) if h.phase is Phase.STARTUP), None)
        if hook is None or hook.application is None:
            return Unfixable("the application the handler is registered on is not a module global")
        application = _application(module, hook.application)
        if isinstance(application, Unfixable):
            return application
        handlers = _handlers(module, found, hook.application, application)
        if isinstance(handlers, Unfixable):
            return handlers
        closes = _closes(found, site, handlers, hook.application)
        if isinstance(closes, Unfixable):
            return closes
        problem = _name_conflicts(module.tree, handlers, application.name, closes)
        if problem is not None:
            return problem
        decorator, imports = _decorator(module.tree, application.index)
        if isinstance(decorator, Unfixable):
            return decorator
        lifespan = _fresh_name(module.tree, "lifespan")
        tree = module.tree
        end = max(handler.index for handler in handlers) + 1
        removed = {handler.index for handler in handlers}

        def build() -> list[cst.BaseStatement]:
            kept: list[cst.BaseStatement] = []
            waiting: _Lines = []
            for index in range(application.index + 1, end):
                statement = tree.body[index]
                if index in removed:
                    assert isinstance(statement, cst.FunctionDef)
                    waiting += _detached(statement)[0]
                elif waiting:
                    kept.append(_below(waiting, statement))
                    waiting = []
                else:
                    kept.append(statement)
            function = _lifespan(tree, lifespan, decorator, application, handlers, closes)
            placed = _below(waiting, function) if waiting else function
            return [placed, _with_lifespan(application, lifespan), *kept]

        closed = ", ".join(f"`{site.shown}`" for site in closes)
        return Plan(
            code=finding.rule.code,
            applicability=Applicability.UNSAFE,
            description=(
                f"move the `on_event` handlers of `{application.name}` into a lifespan that "
                f"closes {closed}"
            ),
            block=tree,
            start=application.index,
            end=end,
            build=build,
            imports=imports,
        )


def _site_of(found: Lifecycle, node: cst.CSTNode) -> PoolSite | None:
    for site in found.sites:
        if site.call is node or site.node is node:
            return site
    return None


def _application(module: ModuleInfo, qualified: str) -> _Application | Unfixable:
    """The module-level statement that creates the application, once."""
    prefix, _, name = qualified.rpartition(".")
    if prefix != module.module_name:
        return Unfixable("the application is created in another module")
    created: list[tuple[int, cst.SimpleStatementLine, cst.BaseExpression | None]] = []
    for index, statement in enumerate(module.tree.body):
        if name in _bound_names(statement):
            value = None
            if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
                small = statement.body[0]
                if (isinstance(small, cst.Assign) and len(small.targets) == 1) or isinstance(
                    small, cst.AnnAssign
                ):
                    value = small.value
            if not isinstance(statement, cst.SimpleStatementLine):
                return Unfixable(f"`{name}` is bound by a compound statement")
            created.append((index, statement, value))
    if len(created) != 1:
        return Unfixable(f"`{name}` is not assigned exactly once at module level")
    index, statement, value = created[0]
    callee = dotted_name(value.func) if isinstance(value, cst.Call) else None
    if not isinstance(value, cst.Call) or module.qualify(callee or "") not in LIFESPAN_APPLICATIONS:
        return Unfixable(f"`{name}` is not created by `FastAPI(...)` or `Starlette(...)`")
    for arg in value.args:
        if arg.star:
            return Unfixable(f"`{code(value)}` may pass its hooks through `{arg.star}` arguments")
        if arg.keyword is not None and arg.keyword.value in REPLACED_BY_LIFESPAN:
            return Unfixable(f"`{name}` is created with `{arg.keyword.value}=`")
    if sum(1 for arg in value.args if arg.keyword is None) > _STARLETTE_POSITIONAL_LIMIT:
        return Unfixable(f"`{code(value)}` passes its hooks as positional arguments")
    return _Application(name, index, statement, value)


def _handlers(
    module: ModuleInfo, found: Lifecycle, qualified: str, application: _Application
) -> list[_Handler] | Unfixable:
    """Every hook of the application, each an ``on_event`` handler the fix can move."""
    positions = {id(statement): index for index, statement in enumerate(module.tree.body)}
    handlers: list[_Handler] = []
    receivers: set[int] = set()
    for function in module.functions:
        for hook in found.hooks_of(function):
            if hook.application != qualified:
                continue
            problem = _movable(function, hook, positions, application)
            if problem is not None:
                return problem
            receivers.add(id(_receiver(hook.node)))
            handlers.append(_Handler(function, hook.phase, positions[id(function.node)]))
    other = _other_registration(module.tree, application.name, receivers)
    if other is not None:
        return Unfixable(
            f"`{code(other)}` registers hooks on `{application.name}` that a lifespan would replace"
        )
    handlers.sort(key=lambda handler: handler.index)
    return handlers


def _movable(
    function: FunctionInfo, hook: Hook, positions: dict[int, int], application: _Application
) -> Unfixable | None:
    node = function.node
    name = function.name
    if hook.phase is Phase.LIFESPAN:
        return Unfixable(f"`{application.name}` already has a lifespan (`{name}`)")
    if function.parent is not None or function.cls is not None or id(node) not in positions:
        return Unfixable(f"the handler `{name}` is not a module-level function")
    if not any(decorator.decorator is hook.node for decorator in node.decorators):
        return Unfixable(f"`{code(hook.node)}` registers a hook the fix does not move")
    if len(node.decorators) != 1:
        return Unfixable(f"the handler `{name}` has other decorators")
    if positions[id(node)] < application.index:
        return Unfixable(f"the handler `{name}` is defined before `{application.name}`")
    if not isinstance(node.body, cst.IndentedBlock):
        return Unfixable(f"the handler `{name}` is written on one line")
    params = node.params
    if params.params or params.posonly_params or params.kwonly_params:
        return Unfixable(f"the handler `{name}` takes parameters")
    if isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None:
        return Unfixable(f"the handler `{name}` takes parameters")
    for inner in walk_scope(node.body):
        if isinstance(inner, cst.Return):
            return Unfixable(f"the handler `{name}` returns early, which would cut the lifespan")
        if isinstance(inner, cst.Yield):
            return Unfixable(f"the handler `{name}` is a generator")
    return None


def _other_registration(
    tree: cst.Module, application: str, receivers: set[int]
) -> cst.CSTNode | None:
    """A registration of hooks on the application other than the decorators
    of the handlers the fix moves: ``app.add_event_handler(...)``,
    ``app.router.on_startup.append(...)``, ``app.on_event("startup")(f)``."""
    for node in walk(tree):
        if (
            type(node) is cst.Attribute
            and isinstance(node, cst.Attribute)
            and node.attr.value in _REGISTERING
            and isinstance(node.value, cst.Name)
            and node.value.value == application
            and id(node) not in receivers
        ):
            return node
    return None


def _receiver(decorator: cst.CSTNode) -> cst.CSTNode:
    """``app.on_event`` of ``@app.on_event("startup")``; ``app.router`` of
    ``@app.router.on_event("startup")``: the attribute of the application
    the decorator goes through."""
    func = decorator.func if isinstance(decorator, cst.Call) else decorator
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Attribute):
        return func.value
    return func


def _closes(
    found: Lifecycle, site: PoolSite, handlers: Sequence[_Handler], qualified: str
) -> list[PoolSite] | Unfixable:
    """The pools the lifespan must close: the finding's, and every other pool
    of the moved startup handlers that the rule would find unclosed (left
    alone, it would become a pool created in a lifespan and never closed)."""
    startups = {id(h.function) for h in handlers if h.phase is Phase.STARTUP}
    chosen: list[PoolSite] = []
    keys: set[str] = set()
    for candidate in found.sites:
        if id(candidate.function) not in startups or candidate.storage.key in keys:
            continue
        if candidate is not site and (
            not candidate.keeps_connections or closing_key(found, candidate, qualified) is None
        ):
            continue
        if candidate.handed_off:
            return Unfixable(f"the startup handler gives `{candidate.shown}` to something else")
        if any(isinstance(node, cst.Call) for node in walk(candidate.target)):
            return Unfixable(f"`{candidate.shown}` is reached through a call")
        keys.add(candidate.storage.key)
        chosen.append(candidate)
    return chosen


@dataclass(frozen=True, slots=True)
class _Names:
    """What one handler does with names."""

    local: frozenset[str]
    declared_global: frozenset[str]
    used: frozenset[str]


def _names(function: FunctionInfo) -> _Names:
    body = function.node.body
    declared = {
        item.name.value
        for node in walk_scope(body)
        if isinstance(node, cst.Global)
        for item in node.names
    }
    used = {node.value for node in walk(body) if isinstance(node, cst.Name)}
    return _Names(frozenset(_bound_names(body) - declared), frozenset(declared), frozenset(used))


def _name_conflicts(
    tree: cst.Module, handlers: Sequence[_Handler], application: str, closes: Sequence[PoolSite]
) -> Unfixable | None:
    """Whether one function can hold every handler's body: no name local to
    one handler and global to another, the application's name free for the
    lifespan's parameter, what the closes read not shadowed by a local, and
    no other use of a handler's name (the handlers disappear)."""
    names = {id(handler): _names(handler.function) for handler in handlers}
    every_local: set[str] = set()
    for handler in handlers:
        mine = names[id(handler)]
        every_local |= mine.local
        if application in mine.local | mine.declared_global:
            return Unfixable(
                f"the handler `{handler.function.name}` binds `{application}`, "
                "the lifespan's parameter"
            )
        for other in handlers:
            theirs = names[id(other)]
            clash = sorted(mine.local & (theirs.used - theirs.local))
            if other is not handler and clash:
                return Unfixable(
                    f"`{clash[0]}` is local to `{handler.function.name}` but not to "
                    f"`{other.function.name}`"
                )
    for site in closes:
        root = _root(site.target)
        if site.storage.kind is not StorageKind.LOCAL and root in every_local:
            return Unfixable(f"`{root}` is local to a handler, so the lifespan cannot close it")
    first = _first_startup(handlers)
    for handler in handlers:
        if handler is first:
            continue
        top = {
            id(small)
            for statement in handler.function.node.body.body
            if isinstance(statement, cst.SimpleStatementLine)
            for small in statement.body
        }
        for node in walk_scope(handler.function.node.body):
            if isinstance(node, cst.Global) and id(node) not in top:
                return Unfixable(
                    f"a `global` statement inside a block of `{handler.function.name}`"
                )
    moved = {handler.function.name for handler in handlers}
    not_uses = {id(handler.function.node.name) for handler in handlers}
    nodes = list(walk(tree))
    for node in nodes:
        # ``database.connect()`` does not use a handler named ``connect``.
        if isinstance(node, cst.Attribute):
            not_uses.add(id(node.attr))
        elif isinstance(node, cst.Arg) and node.keyword is not None:
            not_uses.add(id(node.keyword))
    for node in nodes:
        if isinstance(node, cst.Name) and node.value in moved and id(node) not in not_uses:
            return Unfixable(
                f"`{node.value}` is used elsewhere in the module, and would no longer exist"
            )
    return None


def _root(expr: cst.BaseExpression) -> str | None:
    while isinstance(expr, cst.Attribute | cst.Subscript):
        expr = expr.value
    return expr.value if isinstance(expr, cst.Name) else None


def _bound_names(node: cst.CSTNode) -> set[str]:
    """Names a statement or a function body binds in its own scope."""
    found: set[str] = set()
    for inner in walk_scope(node):
        if isinstance(
            inner, cst.AssignTarget | cst.AnnAssign | cst.AugAssign | cst.For | cst.NamedExpr
        ):
            found.update(assigned_names(inner.target))
        elif isinstance(inner, cst.AsName):
            found.update(assigned_names(inner.name))
        elif isinstance(inner, cst.ImportAlias) and inner.asname is None:
            found.add((dotted_name(inner.name) or "").split(".")[0])
        elif isinstance(inner, cst.FunctionDef | cst.ClassDef):
            found.add(inner.name.value)
    return found


def _decorator(
    tree: cst.Module, index: int
) -> tuple[str | Unfixable, list[cst.SimpleStatementLine]]:
    """How to spell ``contextlib.asynccontextmanager`` where the lifespan is
    defined (statement ``index``), and the import that needs."""
    qualified = "contextlib.asynccontextmanager"
    spelled = spelling(cst.Module(body=tree.body[:index]), qualified)
    if spelled is not None:
        return spelled, []
    if spelling(cst.Module(body=tree.body[index:]), qualified) == qualified:
        return Unfixable("`contextlib` is imported after the application is created"), []
    return qualified, [import_line("contextlib")]


def _fresh_name(tree: cst.Module, base: str) -> str:
    taken = {node.value for node in walk(tree) if isinstance(node, cst.Name)}
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    return candidate


def _first_startup(handlers: Sequence[_Handler]) -> _Handler:
    return next(handler for handler in handlers if handler.phase is Phase.STARTUP)


# -- building the lifespan -------------------------------------------------------

_Lines = list[cst.EmptyLine]
"""Comment lines waiting for the next statement."""


def _lifespan(
    tree: cst.Module,
    name: str,
    decorator: str,
    application: _Application,
    handlers: Sequence[_Handler],
    closes: Sequence[PoolSite],
) -> cst.FunctionDef:
    first = _first_startup(handlers)
    declared = _names(first.function).declared_global
    hoisted: list[str] = []
    before: list[cst.BaseStatement | _Lines] = []
    after: list[cst.BaseStatement | _Lines] = []
    for handler in handlers:
        own = handler is first
        if handler.phase is Phase.STARTUP:
            before.extend(_moved(handler, hoisted, keep_globals=own, deeper=""))
        else:
            after.extend(_moved(handler, hoisted, keep_globals=False, deeper=tree.default_indent))
    extra = [n for n in dict.fromkeys(hoisted) if n not in declared]
    if extra:
        names = [cst.NameItem(cst.Name(n)) for n in extra]
        before.insert(0, cst.SimpleStatementLine([cst.Global(names)]))
    closing = [statement for site in closes for statement in _close(site)]
    protected = cst.Try(
        body=cst.IndentedBlock([cst.SimpleStatementLine([cst.Expr(cst.Yield())])]),
        finalbody=cst.Finally(body=cst.IndentedBlock(_attached([*after, *closing]))),
    )
    suite = first.function.node.body
    indent = suite.indent if isinstance(suite, cst.IndentedBlock) else None
    body = cst.IndentedBlock(_attached([*before, protected]), indent=indent)
    blank = cst.EmptyLine()
    return cst.FunctionDef(
        name=cst.Name(name),
        params=cst.Parameters([cst.Param(cst.Name(application.name))]),
        body=body,
        decorators=[cst.Decorator(cst.parse_expression(decorator))],
        asynchronous=cst.Asynchronous(),
        leading_lines=[blank, blank] if application.index > 0 else [],
    )


def _moved(
    handler: _Handler, hoisted: list[str], *, keep_globals: bool, deeper: str
) -> Iterator[cst.BaseStatement | _Lines]:
    """A handler's body as statements of the lifespan, with the comments
    around the handler before them, its docstring as comments, and its
    ``global`` statements (unless kept) left to be hoisted."""
    node = handler.function.node
    assert isinstance(node.body, cst.IndentedBlock)
    lines: _Lines = _comments(_detached(node)[1])
    for decorator in node.decorators:
        lines += _comments(decorator.leading_lines)
        lines += _trailing_comment(decorator.trailing_whitespace)
    lines += _comments(node.lines_after_decorators)
    lines += _trailing_comment(node.body.header)
    yield lines
    statements = list(node.body.body)
    if statements and _docstring(statements[0]) is not None:
        docstring = statements.pop(0)
        assert isinstance(docstring, cst.SimpleStatementLine)
        yield _comments(docstring.leading_lines)
        yield [_comment_line(text) for text in _docstring_lines(docstring)]
    for statement in statements:
        if isinstance(statement, cst.SimpleStatementLine):
            kept = [
                small
                for small in statement.body
                if keep_globals or not isinstance(small, cst.Global)
            ]
            for small in statement.body:
                if isinstance(small, cst.Global) and not keep_globals:
                    hoisted.extend(item.name.value for item in small.names)
            if not kept or _does_nothing(kept):
                yield _comments(statement.leading_lines)
                yield _trailing_comment(statement.trailing_whitespace)
                continue
            if len(kept) != len(statement.body):
                last = kept[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
                statement = statement.with_changes(body=[*kept[:-1], last])
        yield reindent_continuations(statement, deeper) if deeper else statement
    yield _comments(node.body.footer)


def _detached(node: cst.FunctionDef) -> tuple[_Lines, _Lines]:
    """The comments above a handler: those a blank line separates from it,
    which may be about the module (a section title) and stay at module
    level, and those right above it, which are about the handler and move
    with its body."""
    lines = list(node.leading_lines)
    blank = max((i for i, line in enumerate(lines) if line.comment is None), default=-1)
    return _comments(lines[: blank + 1]), lines[blank + 1 :]


def _below(
    comments: _Lines, statement: cst.SimpleStatementLine | cst.BaseCompoundStatement
) -> cst.BaseStatement:
    """The statement with module-level comments above it, apart from it as
    they were apart from the handler they were above."""
    own = list(statement.leading_lines)
    blank = next((i for i, line in enumerate(own) if line.comment is not None), len(own))
    gap = [cst.EmptyLine()] * (2 if isinstance(statement, cst.FunctionDef | cst.ClassDef) else 1)
    return statement.with_changes(leading_lines=[*own[:blank], *comments, *gap, *own[blank:]])


def _does_nothing(smalls: Sequence[cst.BaseSmallStatement]) -> bool:
    return all(
        isinstance(small, cst.Pass)
        or (isinstance(small, cst.Expr) and isinstance(small.value, cst.Ellipsis))
        for small in smalls
    )


def _docstring(statement: cst.BaseStatement) -> str | None:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if not isinstance(small, cst.Expr):
        return None
    value = small.value
    if isinstance(value, cst.SimpleString | cst.ConcatenatedString):
        evaluated = value.evaluated_value
        return evaluated if isinstance(evaluated, str) else None
    return None


def _docstring_lines(statement: cst.SimpleStatementLine) -> list[str]:
    text = _docstring(statement) or ""
    return inspect.cleandoc(text).splitlines()


def _comments(lines: Sequence[cst.EmptyLine]) -> _Lines:
    """The comment lines, from the first comment on, indented with their new block."""
    found: _Lines = []
    for line in lines:
        if line.comment is None and not found:
            continue
        found.append(line.with_changes(indent=True, whitespace=cst.SimpleWhitespace("")))
    while found and found[-1].comment is None:
        found.pop()
    return found


def _trailing_comment(whitespace: cst.TrailingWhitespace) -> _Lines:
    return [_comment_line(whitespace.comment.value[1:].strip())] if whitespace.comment else []


def _comment_line(text: str) -> cst.EmptyLine:
    return cst.EmptyLine(indent=True, comment=cst.Comment(f"# {text}".rstrip()))


def _attached(items: Sequence[cst.BaseStatement | _Lines]) -> list[cst.BaseStatement]:
    """The statements, each comment line put above the statement after it."""
    statements: list[cst.BaseStatement] = []
    waiting: _Lines = []
    for item in items:
        if isinstance(item, list):
            waiting.extend(item)
            continue
        if waiting:
            assert isinstance(item, cst.SimpleStatementLine | cst.BaseCompoundStatement)
            item = item.with_changes(leading_lines=[*waiting, *item.leading_lines])
            waiting = []
        statements.append(item)
    assert not waiting, "a moved body always ends with the try or a close"
    return statements


def _argument_indent(call: cst.Call) -> cst.SimpleWhitespace | None:
    """The indentation of arguments written one per line."""
    before = [call.whitespace_before_args, *(arg.comma for arg in call.args[:-1])]
    for whitespace in before:
        if isinstance(whitespace, cst.Comma):
            whitespace = whitespace.whitespace_after
        if isinstance(whitespace, cst.ParenthesizedWhitespace):
            return whitespace.last_line
    return None


def _close(site: PoolSite) -> list[cst.SimpleStatementLine]:
    call = cst.parse_expression(site.release_call)
    if site.type.name in WAIT_CLOSED:
        waited = cst.parse_expression(f"{site.shown}.wait_closed()")
        return [_line(call), _line(cst.Await(waited))]
    return [_line(cst.Await(call) if site.type.is_async else call)]


def _line(expression: cst.BaseExpression) -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine([cst.Expr(expression)])


def _with_lifespan(application: _Application, lifespan: str) -> cst.SimpleStatementLine:
    """The statement creating the application, given ``lifespan=``."""
    call = application.call
    argument = cst.Arg(
        cst.Name(lifespan),
        keyword=cst.Name("lifespan"),
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
    )
    args = list(call.args)
    if args:
        last = args[-1]
        separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        if isinstance(last.comma, cst.Comma):
            # A trailing comma: the new argument goes on a line of its own
            # when the others do, and takes the trailing comma.
            after = last.comma.whitespace_after
            indent = _argument_indent(call)
            if isinstance(after, cst.ParenthesizedWhitespace) and indent is not None:
                separator = last.comma.with_changes(
                    whitespace_after=after.with_changes(last_line=indent)
                )
                closing = after.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=())
                argument = argument.with_changes(comma=cst.Comma(whitespace_after=closing))
            else:
                argument = argument.with_changes(comma=last.comma)
        args[-1] = last.with_changes(comma=separator)
    args.append(argument)
    new_call = call.with_changes(args=args)
    statement = application.statement
    small = statement.body[0]
    assert isinstance(small, cst.Assign | cst.AnnAssign)
    lines = list(statement.leading_lines)
    first = next((i for i, line in enumerate(lines) if line.comment is not None), len(lines))
    blank = cst.EmptyLine()
    return statement.with_changes(
        body=[small.with_changes(value=new_call)], leading_lines=[blank, blank, *lines[first:]]
    )

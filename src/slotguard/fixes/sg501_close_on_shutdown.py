"""SG501: a pool or engine that nothing closes is closed on the shutdown path
its code already has.

A pool a function keeps in a local name (or hands to an object it made and
outlives, ``bot.pool = pool``) is closed when that function is done with
it, as SG102's fix closes a session (``slotguard.fixes.lifetime``): entered
with its own context manager where that closes it (``async with
asyncpg.create_pool(...) as pool``, ``with ConnectionPool(...) as pool``),
else disposed in a ``finally`` after its last use (``engine.dispose()``):

    engine = create_engine(URL)              engine = create_engine(URL)
    with engine.connect() as conn:           try:
        migrate(conn)               →            with engine.connect() as conn:
                                                     migrate(conn)
                                             finally:
                                                 engine.dispose()

A pool kept in a module global is closed where the module's application
already shuts down: in the ``finally`` after its lifespan's ``yield`` (a new
one around the ``yield`` and what follows), or at the end of its shutdown
handler (``on_event("shutdown")``, ``on_cleanup``, ``after_server_stop``,
``on_shutdown``, an ``atexit`` hook); one kept on application state in the
lifespan that sets it, after its ``yield``. A pool kept on ``self`` is
disposed in its class's own release method (``close``, ``__exit__``...),
before the line that drops it (``self.engine = None``) or at its end.

The fix declines when the pool is used after that point or leaves the
function, when a function of the project made it (it may hand out a pool it
caches for everyone; one of this module that creates it afresh on every path
is fine), when no shutdown path exists in the module (it writes no new hook,
lifespan or close method: SG502's fix alone makes a lifespan), and where
closing takes more than one awaited call (aiopg's ``close()`` then
``wait_closed()``: its own ``async with`` is the form). It is unsafe: the
pool's connections are closed where they used to stay open until the
process ended.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from slotguard.analysis.infer import FunctionInfo
from slotguard.analysis.pools import PoolSite, StorageKind, lifecycle, ownership
from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.context_manager import (
    callees,
    function_parents,
    index_of,
    reindent_continuations,
)
from slotguard.fixes.lifetime import lifetime
from slotguard.fixes.never_released import Where, finally_plan, with_plan
from slotguard.model.lifecycle import SHUTDOWN_COUNTERPARTS, Phase
from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, RawFinding
from slotguard.rules.common import code
from slotguard.syntax import assigned_names, dotted_name, string_value, unwrap_await, walk

UNSAFE = " (unsafe: its connections are closed there, where they used to stay open)"


class PoolNeverClosedFix(Fixer):
    code = "SG501"
    applicability = Applicability.UNSAFE
    summary = (
        "Close the pool on the shutdown path the code has: after its last use in the "
        "function, in the shutdown handler or after the lifespan's `yield` (a new "
        'shutdown handler beside an `on_event("startup")` one), or in its owner\'s '
        "close method."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        site = next(
            (
                s
                for s in lifecycle(context.module).sites
                if s.node is finding.node or s.target is finding.node
            ),
            None,
        )
        if site is None:
            return Unfixable("the pool is not one the lifecycle analysis tracks")
        kind = site.storage.kind
        if kind is StorageKind.LOCAL or (kind is StorageKind.ATTRIBUTE and site.holder):
            return _local(context, finding, site)
        if kind is StorageKind.INSTANCE:
            return _in_the_owner(context, finding, site)
        return _on_shutdown(context, finding, site)


_NOT_LOCAL = {
    StorageKind.GLOBAL: "the pool is kept in a cache or by a getter, not under a name of "
    "the module that a shutdown hook can close",
    StorageKind.ATTRIBUTE: "the pool is kept on an object the function did not make: "
    "closing it is that object's owner's",
}
SHUTDOWN_UNSAFE = " (unsafe: its connections are closed at shutdown, where they stayed open)"


def _local(context: Context, finding: RawFinding, site: PoolSite) -> Plan | Unfixable:
    function = site.function
    if function is None:
        return Unfixable("the pool is not made by a function")
    parents = function_parents(context, function.node)
    assignment = parents.get(id(site.node))
    line = parents.get(id(assignment)) if assignment is not None else None
    block = parents.get(id(line)) if line is not None else None
    targets = (
        [target.target for target in assignment.targets]
        if isinstance(assignment, cst.Assign)
        else [assignment.target]
        if isinstance(assignment, cst.AnnAssign)
        else []
    )
    if (
        len(targets) != 1
        or not isinstance(targets[0], cst.Name)
        or not isinstance(line, cst.SimpleStatementLine)
        or len(line.body) != 1
        or not isinstance(block, cst.IndentedBlock | cst.Module)
    ):
        return Unfixable("the pool is not bound to a name by a statement of its own")
    name = targets[0].value
    statement: cst.BaseStatement = line
    guarded = _guarding_try(line, block, parents)
    if guarded is not None:
        # ``try: pool = make() / except: ...; return``: the pool exists
        # after the ``try``, which takes the acquisition's place.
        statement, block = guarded
    resource = site.type
    if resource.is_async and not function.is_async:
        return Unfixable("the pool is asynchronous but the function is not")
    where = Where(line, block, index_of(block, statement), name, None)
    life = lifetime(
        function.node,
        block,
        where.index,
        name,
        Kind.POOL,
        parents,
        callees=callees(context, function),
    )
    if isinstance(life, Unfixable):
        return life
    wrapped = unwrap_await(site.node)[0] is not site.call
    produced = function.scope.produced(site.node)
    via_project = produced is not None and produced.via_project
    if via_project and not _creates_afresh(context, site.call):
        # ``get_engine()`` may hand out a pool it caches for everyone:
        # closing it after one use would close it under them.
        return Unfixable(
            f"`{code(site.call.func, 40)}` is the project's: it may hand out a pool others share"
        )
    if (
        resource.with_releases
        and resource.context_manager_form
        and not (wrapped or via_project or guarded)
    ):
        keyword = "async with" if resource.is_async else "with"
        return with_plan(
            context,
            finding.rule.code,
            where,
            (),
            life.end,
            site.call,
            is_async=resource.is_async,
            imports=(),
            description=f"enter `{name}` with `{keyword} {code(site.call)} as {name}:` "
            "up to its last use" + UNSAFE,
        )
    if not resource.release_methods:
        return Unfixable(resource.with_note)
    if resource.is_async and not resource.release_awaited:
        return Unfixable(_TAKES_MORE.format(site.shown, resource.release_methods[0]))
    release: cst.BaseExpression = cst.Call(
        cst.Attribute(cst.Name(name), cst.Name(resource.release_methods[0]))
    )
    if resource.is_async:
        release = cst.Await(release)
    return finally_plan(
        context,
        finding.rule.code,
        where,
        site.node,
        life.end,
        release,
        f"close `{name}` with `{code(release)}` in a `finally` after its last use" + UNSAFE,
        kept=statement,
    )


_TAKES_MORE = (
    "closing `{}` takes more than `{}()` (its pool waits for its connections): "
    "enter it with its own `async with`"
)


def _guarding_try(
    line: cst.SimpleStatementLine,
    block: cst.IndentedBlock | cst.Module,
    parents: dict[int, cst.CSTNode],
) -> tuple[cst.Try, cst.IndentedBlock | cst.Module] | None:
    """The ``try`` whose body ends with the acquisition, when each of its
    handlers leaves the function (so the name is bound after it), with no
    ``else`` or ``finally``."""
    statement = parents.get(id(block))
    if not isinstance(statement, cst.Try) or statement.body is not block:
        return None
    if block.body[-1] is not line or statement.orelse is not None or statement.finalbody:
        return None
    outer = parents.get(id(statement))
    if not statement.handlers or not isinstance(outer, cst.IndentedBlock | cst.Module):
        return None
    for handler in statement.handlers:
        body = handler.body
        if not isinstance(body, cst.IndentedBlock):
            return None
        last = body.body[-1]
        if not (
            isinstance(last, cst.SimpleStatementLine)
            and isinstance(last.body[-1], cst.Return | cst.Raise)
        ):
            return None
    return statement, outer


def _creates_afresh(context: Context, call: cst.Call) -> bool:
    """Whether ``call`` is of a function of this module that returns a pool
    it has just created on every path: ``return await asyncpg.create_pool(...)``."""
    name = dotted_name(call.func)
    function = context.module.function_named(name) if name is not None else None
    if function is None or function.is_generator:
        return False
    returns = [node for node in function.scope.of_type(cst.Return) if isinstance(node, cst.Return)]
    for node in returns:
        value = node.value
        produced = function.scope.produced(value) if value is not None else None
        if produced is None or produced.via_project or produced.type.kind is not Kind.POOL:
            return False
    return bool(returns)


# -- a pool kept on the application or the module: its shutdown hook --------------


def _on_shutdown(context: Context, finding: RawFinding, site: PoolSite) -> Plan | Unfixable:
    """A module global, or application state set in a lifespan: its release
    goes where the module's application already shuts down: after the
    lifespan's ``yield`` (in its ``finally``), or at the end of a shutdown
    handler (``on_event("shutdown")``, ``on_cleanup``, ``after_server_stop``,
    ``on_shutdown``) or an ``atexit`` hook."""
    found = lifecycle(context.module)
    release = _release_call(site)
    if isinstance(release, Unfixable):
        return release
    if site.storage.kind is StorageKind.STATE:
        # ``app.state.pool`` reads the same only where it was set.
        function = site.function
        if function is None or found.phase_of(function) is not Phase.LIFESPAN:
            return Unfixable(
                "the pool is kept on application state outside a lifespan: where the "
                "application shuts down, it may be spelled differently"
            )
        return _after_yield(context, finding, function, site, release)
    if site.storage.kind is not StorageKind.GLOBAL or not _is_module_name(context, site):
        return Unfixable(_NOT_LOCAL[site.storage.kind])
    hooks = [
        function
        for function in context.module.functions
        if any(hook.phase in (Phase.SHUTDOWN, Phase.LIFESPAN) for hook in found.hooks_of(function))
    ]
    if not hooks:
        return _beside_the_startup_handler(context, finding, site, release)
    hook = hooks[0]
    name = site.shown
    if name in _locally_bound(hook):
        return Unfixable(f"`{hook.name}` binds `{name}` to something else")
    if found.phase_of(hook) is Phase.LIFESPAN:
        return _after_yield(context, finding, hook, site, release)
    return _at_the_end(context, finding, hook, site, release)


_NO_SHUTDOWN_HOOK = (
    "no shutdown hook or lifespan of the application is in this module "
    "(the fix adds the close to one, and writes none)"
)


def _beside_the_startup_handler(
    context: Context, finding: RawFinding, site: PoolSite, release: cst.BaseExpression
) -> Plan | Unfixable:
    """A module whose application runs a startup handler registered by a
    decorator that has a shutdown counterpart (``@app.on_event("startup")``,
    ``SHUTDOWN_COUNTERPARTS``) and no shutdown handler: a shutdown handler
    registered the same way, right after it, closes the pool. The
    application's own mechanism, spelled as the module spells it; nothing else
    of the module changes."""
    found = lifecycle(context.module)
    module = context.module.tree
    for index, statement in enumerate(module.body):
        if not isinstance(statement, cst.FunctionDef) or len(statement.decorators) != 1:
            continue
        function = context.module.function_named(statement.name.value)
        decorator = statement.decorators[0]
        registration = next(
            (
                _shutdown_registration(hook.node)
                for hook in found.hooks_of(function)
                if hook.phase is Phase.STARTUP and hook.node is decorator.decorator
            ),
            None,
        )
        if registration is None:
            continue
        name = _free_name(context, f"close_{site.shown.rsplit('.', 1)[-1]}")
        handler = _shutdown_handler(statement, decorator, registration, name, release)

        def build(
            statement: cst.FunctionDef = statement, handler: cst.FunctionDef = handler
        ) -> list[cst.BaseStatement]:
            return [statement, handler]

        return Plan(
            code=finding.rule.code,
            applicability=Applicability.UNSAFE,
            description=(
                f"close `{site.shown}` with `{code(release)}` in a new shutdown handler "
                f"`{name}`, registered like `{statement.name.value}`" + SHUTDOWN_UNSAFE
            ),
            block=module,
            start=index,
            end=index + 1,
            build=build,
        )
    return Unfixable(_NO_SHUTDOWN_HOOK)


def _shutdown_registration(node: cst.CSTNode) -> cst.Call | None:
    """The startup registration ``node`` (``app.on_event("startup")``) with
    its event replaced by its shutdown counterpart, if the model knows one."""
    if not (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and len(node.args) == 1
        and isinstance(node.args[0].value, cst.SimpleString)
    ):
        return None
    event = node.args[0].value
    counterpart = SHUTDOWN_COUNTERPARTS.get((node.func.attr.value, string_value(event) or ""))
    if counterpart is None:
        return None
    renamed = cst.SimpleString(event.prefix + event.quote + counterpart + event.quote)
    return node.with_changes(args=[node.args[0].with_changes(value=renamed)])


def _shutdown_handler(
    startup: cst.FunctionDef,
    decorator: cst.Decorator,
    registration: cst.Call,
    name: str,
    release: cst.BaseExpression,
) -> cst.FunctionDef:
    template = cst.parse_statement(f"async def {name}() -> None:\n    pass\n")
    assert isinstance(template, cst.FunctionDef)
    body = cst.IndentedBlock(
        body=[cst.SimpleStatementLine([cst.Expr(release)])],
        indent=startup.body.indent if isinstance(startup.body, cst.IndentedBlock) else None,
    )
    return template.with_changes(
        decorators=[decorator.with_changes(decorator=registration)],
        body=body,
        leading_lines=[cst.EmptyLine(), cst.EmptyLine()],
    )


def _free_name(context: Context, wanted: str) -> str:
    """``wanted``, or ``wanted_2``... if the module already binds it."""
    module = context.module
    taken = {*module.definitions, *module.module_scope.local_names, *module.module_scope.bindings}
    name, number = wanted, 2
    while name in taken:
        name, number = f"{wanted}_{number}", number + 1
    return name


def _release_call(site: PoolSite) -> cst.BaseExpression | Unfixable:
    resource = site.type
    if not resource.release_methods:
        return Unfixable(resource.with_note)
    if resource.is_async and not resource.release_awaited:
        return Unfixable(
            f"closing `{site.shown}` takes more than `{resource.release_methods[0]}()` "
            "(its pool waits for its connections): enter it with its own `async with`"
        )
    target = cst.parse_expression(site.shown) if site.label is None else None
    if target is None:
        return Unfixable("the pool is not kept under a name the hook can spell")
    call = cst.Call(cst.Attribute(target, cst.Name(resource.release_methods[0])))
    return cst.Await(call) if resource.is_async else call


def _is_module_name(context: Context, site: PoolSite) -> bool:
    """A plain global of this module (``engine``), not a cache or a getter's."""
    return (
        site.label is None
        and isinstance(site.target, cst.Name)
        and site.storage.name.rsplit(".", 1)[-1] == site.target.value
    )


def _locally_bound(function: FunctionInfo) -> set[str]:
    bound = {param.name.value for param in function.node.params.params}
    for node in walk(function.node.body):
        if isinstance(node, cst.AssignTarget | cst.AnnAssign | cst.AugAssign | cst.For):
            bound |= set(assigned_names(node.target))
        elif isinstance(node, cst.AsName):
            bound |= set(assigned_names(node.name))
    return bound


def _awaitable_in(function: FunctionInfo, release: cst.BaseExpression) -> Unfixable | None:
    if isinstance(release, cst.Await) and not function.is_async:
        return Unfixable(f"`{function.name}` is not asynchronous, and the close is awaited")
    return None


def _after_yield(
    context: Context,
    finding: RawFinding,
    function: FunctionInfo,
    site: PoolSite,
    release: cst.BaseExpression,
) -> Plan | Unfixable:
    """In the lifespan: into the ``finally`` of the ``try`` around its
    ``yield``, or a new one from the ``yield`` to the end."""
    refused = _awaitable_in(function, release)
    if refused is not None:
        return refused
    body = function.node.body
    if not isinstance(body, cst.IndentedBlock):
        return Unfixable("a one-line lifespan")
    line = cst.SimpleStatementLine([cst.Expr(release)])
    indent = context.tree.default_indent
    for index, statement in enumerate(body.body):
        if _is_yield(statement):
            tail = list(body.body[index:])

            def wrap(tail: list[cst.BaseStatement] = tail) -> list[cst.BaseStatement]:
                moved = [reindent_continuations(part, indent) for part in tail]
                first = moved[0]
                above = first.leading_lines if isinstance(first, cst.SimpleStatementLine) else ()
                if isinstance(first, cst.SimpleStatementLine):
                    moved[0] = first.with_changes(leading_lines=())
                return [
                    cst.Try(
                        body=cst.IndentedBlock(moved),
                        finalbody=cst.Finally(body=cst.IndentedBlock([line])),
                        leading_lines=above,
                    )
                ]

            return _plan(
                finding, body, index, len(body.body), wrap, site, release, "after the `yield`"
            )
        if (
            isinstance(statement, cst.Try)
            and statement.finalbody is not None
            and isinstance(statement.body, cst.IndentedBlock)
            and any(_is_yield(part) for part in statement.body.body)
        ):
            final = statement.finalbody

            def extended(
                statement: cst.Try = statement, final: cst.Finally = final
            ) -> list[cst.BaseStatement]:
                block = final.body
                assert isinstance(block, cst.IndentedBlock)
                grown = block.with_changes(body=[*block.body, line])
                return [statement.with_changes(finalbody=final.with_changes(body=grown))]

            return _plan(
                finding,
                body,
                index,
                index + 1,
                extended,
                site,
                release,
                "in the `finally` after the `yield`",
            )
    return Unfixable(f"the `yield` of `{function.name}` is not a statement of its body")


def _at_the_end(
    context: Context,
    finding: RawFinding,
    function: FunctionInfo,
    site: PoolSite,
    release: cst.BaseExpression,
) -> Plan | Unfixable:
    """At the end of a shutdown handler."""
    refused = _awaitable_in(function, release)
    if refused is not None:
        return refused
    body = function.node.body
    if not isinstance(body, cst.IndentedBlock):
        return Unfixable("a one-line shutdown handler")
    if any(isinstance(node, cst.Return) for node in walk(body)):
        return Unfixable(f"`{function.name}` may return before its end")
    line = cst.SimpleStatementLine([cst.Expr(release)])
    end = len(body.body)
    last = body.body[-1]

    def append() -> list[cst.BaseStatement]:
        if isinstance(last, cst.SimpleStatementLine) and _is_pass(last):
            return [line.with_changes(leading_lines=last.leading_lines)]
        return [last, line]

    return _plan(
        finding, body, end - 1, end, append, site, release, f"at the end of `{function.name}`"
    )


def _plan(
    finding: RawFinding,
    block: cst.IndentedBlock,
    start: int,
    end: int,
    build: Callable[[], list[cst.BaseStatement]],
    site: PoolSite,
    release: cst.BaseExpression,
    where: str,
) -> Plan:
    return Plan(
        code=finding.rule.code,
        applicability=Applicability.UNSAFE,
        description=f"close `{site.shown}` with `{code(release)}` {where}" + SHUTDOWN_UNSAFE,
        block=block,
        start=start,
        end=end,
        build=build,
    )


def _is_yield(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, cst.Yield)
    )


def _is_pass(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Pass)
    )


# -- a pool kept on ``self``: its owner's release method ---------------------------


def _in_the_owner(context: Context, finding: RawFinding, site: PoolSite) -> Plan | Unfixable:
    """``self.engine``: disposed in the class's own release method, where it
    drops the pool (``self.engine = None``) or at the end of that method."""
    owned = ownership(context.module, lifecycle(context.module), site)
    if owned is None:
        return Unfixable("the class that keeps the pool is not one the fix can read")
    method = owned.release_method
    if method is None:
        return Unfixable(
            f"`{owned.owner.name}` has no close method, and a new one nobody calls "
            "would close nothing"
        )
    if owned.skipped is not None:
        return Unfixable(
            f"`{owned.owner.name}.{method.name}` closes it only when nothing before raises"
        )
    release = _release_call(site)
    if isinstance(release, Unfixable):
        return release
    if owned.dropped is not None:
        return _before_the_drop(context, finding, method, owned.dropped, site, release)
    return _at_the_end(context, finding, method, site, release)


def _before_the_drop(
    context: Context,
    finding: RawFinding,
    method: FunctionInfo,
    dropped: cst.CSTNode,
    site: PoolSite,
    release: cst.BaseExpression,
) -> Plan | Unfixable:
    refused = _awaitable_in(method, release)
    if refused is not None:
        return refused
    parents = function_parents(context, method.node)
    line = parents.get(id(dropped))
    block = parents.get(id(line)) if line is not None else None
    if not isinstance(line, cst.SimpleStatementLine) or not isinstance(block, cst.IndentedBlock):
        return Unfixable("the pool is dropped inside another statement")
    index = index_of(block, line)
    statement = cst.SimpleStatementLine([cst.Expr(release)], leading_lines=line.leading_lines)

    def insert() -> list[cst.BaseStatement]:
        return [statement, line.with_changes(leading_lines=())]

    return _plan(finding, block, index, index + 1, insert, site, release, "before it is dropped")

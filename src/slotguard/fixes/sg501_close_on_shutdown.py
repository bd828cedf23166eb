"""SG501: a pool or engine that nothing closes is closed on the shutdown path
its code already has.

A pool the function keeps in a local name is closed when that function is
done with it, as SG102's fix closes a session (``slotguard.fixes.lifetime``):
entered with its own context manager where that closes it
(``async with asyncpg.create_pool(...) as pool``, ``with ConnectionPool(...)
as pool``), else disposed in a ``finally`` after its last use
(``engine.dispose()``, ``await engine.dispose()``):

    engine = create_engine(URL)              engine = create_engine(URL)
    with engine.connect() as conn:           try:
        migrate(conn)               →            with engine.connect() as conn:
                                                     migrate(conn)
                                             finally:
                                                 engine.dispose()

The fix declines when the pool is used after that point or leaves the
function, when a function of the project made it (it may hand out a pool it
caches for everyone; one of this module that creates it afresh on every path
is fine), and for pools kept anywhere else (a global, application state, an
attribute): where their shutdown path is, if there is one, is the
application's. It is unsafe: the pool's connections are closed where they
used to stay open until the process ended.
"""

from __future__ import annotations

import libcst as cst

from slotguard.analysis.pools import PoolSite, StorageKind, lifecycle
from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.context_manager import function_parents, index_of
from slotguard.fixes.lifetime import lifetime
from slotguard.fixes.never_released import Where, callees, finally_plan, with_plan
from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, RawFinding
from slotguard.rules.common import code
from slotguard.syntax import dotted_name, unwrap_await

UNSAFE = " (unsafe: its connections are closed there, where they used to stay open)"


class PoolNeverClosedFix(Fixer):
    code = "SG501"
    applicability = Applicability.UNSAFE
    summary = (
        "Close a pool the function keeps in a local name after its last use (its own "
        "`async with`, or `dispose()` in a `finally`)."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        site = next((s for s in lifecycle(context.module).sites if s.node is finding.node), None)
        if site is None:
            return Unfixable("the pool is not one the lifecycle analysis tracks")
        if site.storage.kind is StorageKind.LOCAL:
            return _local(context, finding, site)
        return Unfixable(_NOT_LOCAL[site.storage.kind])


_NOT_LOCAL = {
    StorageKind.GLOBAL: "the pool is a module global: where the application shuts down "
    "is not in this function",
    StorageKind.STATE: "the pool is kept on application state, and no shutdown hook of "
    "the application is in this module",
    StorageKind.ATTRIBUTE: "the pool is kept on an object: closing it is the owner's "
    "`close()`, which the fix does not write",
}


def _local(context: Context, finding: RawFinding, site: PoolSite) -> Plan | Unfixable:
    function = site.function
    if function is None or not isinstance(site.target, cst.Name):
        return Unfixable("the pool is not bound to a name of a function")
    name = site.target.value
    parents = function_parents(context, function.node)
    assignment = parents.get(id(site.node))
    line = parents.get(id(assignment)) if assignment is not None else None
    block = parents.get(id(line)) if line is not None else None
    if (
        not isinstance(assignment, cst.Assign | cst.AnnAssign)
        or not isinstance(line, cst.SimpleStatementLine)
        or len(line.body) != 1
        or not isinstance(block, cst.IndentedBlock | cst.Module)
    ):
        return Unfixable(f"`{name} = ...` is not a statement of its own")
    resource = site.type
    if resource.is_async and not function.is_async:
        return Unfixable("the pool is asynchronous but the function is not")
    where = Where(line, block, index_of(block, line), name, None)
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
    if resource.with_releases and resource.context_manager_form and not (wrapped or via_project):
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
    if resource.is_async and resource.with_releases:
        # Its own ``async with`` closes it; whether its ``close()`` is a
        # coroutine, and what else closing takes (aiopg's ``wait_closed()``),
        # depends on the library.
        return Unfixable(
            f"`{code(site.call, 40)}` is closed by its own `async with`, which cannot enter "
            "it here (a wrapped acquisition, a project's function, or no known form)"
        )
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
    )


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

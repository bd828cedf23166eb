"""
## What it does
Finds acquisitions that can wait forever for a free connection: an asyncpg
`pool.acquire()` without `timeout=` (or with `timeout=None`), outside any
`asyncio.timeout(...)`, `asyncio.wait_for(...)` or `anyio.fail_after(...)`
that would bound it; and pools built to wait forever, such as SQLAlchemy's
`create_engine(..., pool_timeout=None)` or psycopg_pool's
`ConnectionPool(..., timeout=None)`.

Opt-in: select it with `--select SG503` (or `SG5`).

## Why is this bad?
When the pool is exhausted, by a leak, a burst of traffic or a slow query,
an acquisition without a time limit waits until a connection comes back,
which after a leak is never. Requests pile up silently behind it instead of
failing fast with an error that points at the pool, and health checks that
do not touch the database keep reporting the process healthy.

## Example
```python
async def handler(pool):
    async with pool.acquire() as conn:
        return await conn.fetch("select * from orders")
```

## Use instead
```python
async def handler(pool):
    async with pool.acquire(timeout=5) as conn:
        return await conn.fetch("select * from orders")
```

## Fix safety
There is no automatic fix: the right limit depends on the application.

## At runtime
`slotguard.runtime.install(threshold=30)` logs the connections held past 30 s,
with their stacks: the holders an unbounded acquisition waits behind.
"""

from __future__ import annotations

import libcst as cst

from slotguard.analysis.infer import ModuleInfo, Scope
from slotguard.model.lifecycle import (
    POOL_TIMEOUTS,
    TIME_LIMITS,
    UNBOUNDED_ACQUIRES,
    pool_timeout,
    unbounded_acquire,
)
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.syntax import dotted_name, keyword_argument, last_name, walk

_ACQUIRE_METHODS = frozenset(entry.method for entry in UNBOUNDED_ACQUIRES)
_CONSTRUCTOR_NAMES = frozenset(
    name.rsplit(".", 1)[-1] for entry in POOL_TIMEOUTS for name in entry.constructors
)
_TIME_LIMIT_NAMES = frozenset(name.rsplit(".", 1)[-1] for name in TIME_LIMITS)


class AcquireWithoutTimeout(Rule):
    code = "SG503"
    name = "acquire-without-timeout"
    summary = "An acquisition can wait forever for a free connection."
    default = False

    def check(self, context: Context) -> None:
        module = context.module
        for scope in (module.module_scope, *(f.scope for f in module.functions)):
            bounded: set[int] | None = None
            for call in scope.of_type(cst.Call):
                assert isinstance(call, cst.Call)
                func = call.func
                last = last_name(func)
                if last in _ACQUIRE_METHODS and type(func) is cst.Attribute:
                    assert isinstance(func, cst.Attribute)
                    if bounded is None:
                        bounded = _time_limited(scope)
                    if id(call) not in bounded:
                        self._acquire(context, scope, call, func)
                elif last in _CONSTRUCTOR_NAMES:
                    self._constructor(context, module, call)

    def _acquire(self, context: Context, scope: Scope, call: cst.Call, func: cst.Attribute) -> None:
        typed = scope.type_of(func.value)
        entry = unbounded_acquire(typed.name, func.attr.value) if typed is not None else None
        if entry is None or _sets_a_limit(call, entry.keyword):
            return
        context.report(
            call,
            f"`{code(call, 40)}` can wait forever for a free connection: pass `{entry.keyword}=`",
            related=[(call, "no time limit here, and no `asyncio.timeout(...)` around it")],
        )

    def _constructor(self, context: Context, module: ModuleInfo, call: cst.Call) -> None:
        name = dotted_name(call.func)
        entry = pool_timeout(module.qualify(name) or "") if name is not None else None
        if entry is None:
            return
        arg = keyword_argument(call, entry.keyword)
        if arg is None or not _is_none(arg.value):
            return
        context.report(
            arg,
            f"`{entry.keyword}=None`: every checkout from `{code(call.func, 30)}(...)` can wait "
            "forever",
            related=[(arg, f"give it a finite `{entry.keyword}` (default {entry.default:g} s)")],
        )


def _sets_a_limit(call: cst.Call, keyword: str) -> bool:
    if any(arg.star == "**" for arg in call.args):
        return True
    arg = keyword_argument(call, keyword)
    return arg is not None and not _is_none(arg.value)


def _is_none(expr: cst.BaseExpression) -> bool:
    return type(expr) is cst.Name and isinstance(expr, cst.Name) and expr.value == "None"


def _time_limited(scope: Scope) -> set[int]:
    """The calls of a scope that run inside a time limit: in the body of
    ``async with asyncio.timeout(...)``, or as the awaitable given to
    ``asyncio.wait_for(...)``."""
    module = scope.module
    inside: set[int] = set()
    for node in scope.of_type(cst.With):
        assert isinstance(node, cst.With)
        if any(_is_time_limit(module, item.item) for item in node.items):
            inside.update(id(sub) for sub in walk(node.body))
    for node in scope.of_type(cst.Call):
        assert isinstance(node, cst.Call)
        if node.args and _is_time_limit(module, node):
            inside.update(id(sub) for sub in walk(node.args[0].value))
    return inside


def _is_time_limit(module: ModuleInfo, expr: cst.BaseExpression) -> bool:
    if type(expr) is not cst.Call:
        return False
    assert isinstance(expr, cst.Call)
    if last_name(expr.func) not in _TIME_LIMIT_NAMES:
        return False
    name = dotted_name(expr.func)
    return name is not None and module.qualify(name) in TIME_LIMITS

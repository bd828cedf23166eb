"""
## What it does
Finds a sleep (`asyncio.sleep`, `time.sleep`, `trio.sleep`, `anyio.sleep`)
or a wait with no timeout (`event.wait()`, `queue.get()`, `condition.wait()`,
`thread.join()`, `future.result()`, `await future`) while a connection is
held: inside a transaction block, inside `async with pool.acquire() as conn`
or `with engine.connect() as conn` (any block that holds a pool's
connection), while a pool connection taken by hand is not yet released, or
while a SQLAlchemy session is in the transaction its first query began.
Sleeps and waits inside functions of the same module that the code calls
count too.

A direct connection (`asyncpg.connect()`, `psycopg.connect()`) is no pool's,
and often waits on purpose (`LISTEN`): it counts only inside a transaction.
A wait bounded by `asyncio.wait_for(..., timeout)`, `async with
asyncio.timeout(...)` or its own `timeout=` argument, `queue.get(block=False)`
and `asyncio.sleep(0)` are not reported.

## Why is this bad?
A connection that sleeps is checked out and idle for the whole sleep, and in
a transaction it keeps its locks too. A polling loop that sleeps while holding
its connection, or a handler that waits for an event that may never come,
takes a connection out of the pool for that long: enough of them and every
request waits for a connection, although each one is released in the end.

## Example
```python
async def wait_for_payment(pool, order_id):
    async with pool.acquire() as conn:
        while await conn.fetchval(STATUS, order_id) == "pending":
            await asyncio.sleep(0.5)
```

## Use instead
```python
async def wait_for_payment(pool, order_id):
    while await pool.fetchval(STATUS, order_id) == "pending":
        await asyncio.sleep(0.5)
```

## Fix safety
There is no automatic fix: where to release and re-acquire the connection
depends on what the code needs to see consistently.

## At runtime
`slotguard.runtime.install(threshold=30)` logs any connection held longer than
30 s, with the stack that took it; the sleep is what holds it.
"""

from __future__ import annotations

import libcst as cst

from slotguard.analysis.infer import FunctionInfo
from slotguard.analysis.ownership import in_a_test
from slotguard.analysis.slow_work import (
    CONNECTION_KINDS,
    RegionKind,
    SlowCall,
    SlowKind,
    SlowWork,
)
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import subject
from slotguard.rules.sg401_external_call_in_transaction import (
    chain_related,
    slow_phrase,
    slow_work_for,
)
from slotguard.rules.sg403_external_call_in_implicit_transaction import (
    implicit_transactions,
    sessions_may_begin,
)

_ADVICE = {
    SlowKind.SLEEP: (
        "the connection sits idle for the whole sleep; release it (or end the "
        "transaction) before sleeping"
    ),
    SlowKind.WAIT: (
        "the connection sits idle for as long as the wait lasts; bound the wait with "
        "`asyncio.wait_for(..., timeout)`, or wait before taking the connection"
    ),
}

Reason = tuple[str, list[tuple[cst.CSTNode, str]]]


class SleepWhileHolding(Rule):
    code = "SG402"
    name = "sleep-while-holding"
    summary = "A sleep or a wait without a timeout runs while a connection is held."

    def check(self, context: Context) -> None:
        work = slow_work_for(context)
        module = context.module
        for function in (None, *module.functions):
            if in_a_test(function):
                continue
            everywhere = function is not None and (
                context.flow(function) is not None or sessions_may_begin(module, function, work)
            )
            for slow in work.in_function(function, everywhere=everywhere):
                if slow.kind is SlowKind.EXTERNAL:
                    continue
                reason = _reason(context, work, function, slow)
                if reason is None:
                    continue
                held, related = reason
                place, label = related[0]
                context.report(
                    slow.node,
                    f"{slow_phrase(context, slow)} {held}",
                    related=[
                        (place, f"{label}; {_ADVICE[slow.kind]}"),
                        *related[1:],
                        *chain_related(context, slow),
                    ],
                )


def _reason(
    context: Context, work: SlowWork, function: FunctionInfo | None, slow: SlowCall
) -> Reason | None:
    """Why a connection is held at the slow call, or None if it is not."""
    region = slow.innermost(RegionKind.TRANSACTION) or slow.innermost(RegionKind.CONNECTION)
    if region is not None:
        line = context.line(region.node)
        if region.kind is RegionKind.TRANSACTION:
            text = f"inside the transaction opened at line {line}"
            return text, [(region.node, "the transaction opens here")]
        held = f"`{region.name}`" if region.name else "the connection"
        text = f"while {held} (checked out at line {line}) waits"
        return text, [(region.node, "the connection is checked out here")]
    if function is None:
        return None
    flow = context.flow(function)
    if flow is not None:
        for point in flow.graph.evaluating().get(id(slow.node), ()):
            for site, _ in flow.held_at(point):
                if site.type.kind in CONNECTION_KINDS:
                    line = context.line(site.node)
                    text = f"while {subject(site, 30)} (acquired at line {line}) is checked out"
                    return text, [(site.node, "the connection is acquired here")]
    transactions = implicit_transactions(context.module, function, work)
    if transactions is not None:
        begun = transactions.open_at(slow.node)
        if begun:
            query = begun[0].query
            text = (
                f"while `{begun[0].session}` is idle in the transaction begun at line "
                f"{context.line(query)}"
            )
            return text, [(query, f"`{begun[0].session}`'s transaction begins here")]
    return None

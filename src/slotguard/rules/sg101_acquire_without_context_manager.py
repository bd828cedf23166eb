"""
## What it does
Finds a connection taken from a pool by a bare call, such as
`conn = await pool.acquire()` or `conn = pool.getconn()`, instead of the
pool's context manager.

## Why is this bad?
A connection taken by hand goes back to the pool only if every path that
follows reaches the release: one early `return`, one exception, one
cancelled `await`, and the connection stays checked out. Enough of those and
the pool is empty, every request waits, and PostgreSQL eventually refuses new
connections. The context-manager form releases on every path, by
construction.

The rule fires even when a `try`/`finally` releases the connection today:
that code is correct but fragile, and `slotguard fix` turns it into the
context-manager form. It stays silent when the connection is handed to
someone else (returned, registered on an exit stack, stored on an object that
releases it) and inside code that implements a context manager.

## Example
```python
async def get_user(pool, user_id):
    conn = await pool.acquire()
    try:
        return await conn.fetchrow("select * from users where id = $1", user_id)
    finally:
        await pool.release(conn)
```

## Use instead
```python
async def get_user(pool, user_id):
    async with pool.acquire() as conn:
        return await conn.fetchrow("select * from users where id = $1", user_id)
```

## Fix safety
Safe when the release sits in the matching `finally`, or ends the block that
acquired the connection: the rewrite releases on exactly the paths the code
already intended.

## At runtime
`pytest --slotguard-leaks=fail` fails a test that ends with the connection
still out of its pool, naming the bare acquisition that took it; in
production, `slotguard.runtime.install(threshold=30)` logs any connection held
longer, with that stack (README, "Runtime: prove it in your tests").
"""

from __future__ import annotations

from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import (
    builds_a_context_manager,
    code,
    context_manager_form,
    flows,
    reclaimed_elsewhere,
)


class AcquireWithoutContextManager(Rule):
    code = "SG101"
    name = "acquire-without-context-manager"
    summary = "A pooled connection is taken by a bare call instead of the context manager."

    def check(self, context: Context) -> None:
        report_bare_acquisitions(context, frozenset([Kind.POOLED_CONNECTION]))


def report_bare_acquisitions(context: Context, kinds: frozenset[Kind]) -> None:
    """Shared by SG101 and SG102: acquisitions of ``kinds`` that this function
    keeps for itself instead of entering them."""
    for flow in flows(context):
        if builds_a_context_manager(flow.function):
            continue
        for outcome in flow.outcomes:
            site = outcome.site
            if site.type.kind not in kinds or outcome.handed_off:
                continue
            if reclaimed_elsewhere(context, site):
                continue
            what = f"`{site.name}`" if site.name else f"the {site.type.kind.value}"
            acquired = f"`{code(site.node)}`"
            form = context_manager_form(site)
            if not outcome.released:
                message = f"{what} from {acquired} is never released"
                message += f"; use `{form}`" if form else "; release it in a `finally`"
            elif form:
                message = f"{what} is acquired with {acquired} instead of `{form}`"
            else:
                continue
            context.report(site.node, message)

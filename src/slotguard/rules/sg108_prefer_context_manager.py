"""
## What it does
Finds a connection or session that is released correctly, by a `try`/`finally`
or at the end of its block, but by hand instead of in context-manager form:

```python
conn = await pool.acquire()
try:
    ...
finally:
    await pool.release(conn)
```

It also finds a direct connection left open for the garbage collector
(psycopg2, psycopg, asyncpg's `connect`, also as `with psycopg2.connect()`,
which only ends the transaction): CPython closes such a connection when the
last reference to it goes, when the function returns, so it holds no slot
past its use; but nothing in the code says so, and an exception kept by a
caller keeps it open.

This rule is opt-in (`--extend-select SG108`): the code it reports does not
leak. Select it to keep a code base in one style.

## Why is this bad?
It is correct today, and one edit away from a leak: an early `return` added
before the `try`, a second statement put between the acquisition and the
`try`, a release moved out of the `finally`. The context-manager form
releases on every path by construction, and reads as what it is.

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
acquired the resource: the rewrite releases on exactly the paths the code
already released on.

## At runtime
`pytest --slotguard-leaks=fail` reports a direct connection still open when
the test ends where reference counting does not close it (asyncpg's); one that
CPython closes as soon as nothing refers to it (psycopg2's, psycopg's) is no
leak at runtime and is not reported, nor is a connection released by hand.
"""

from __future__ import annotations

from slotguard.rules.base import Context, Rule
from slotguard.rules.common import report_judged
from slotguard.rules.sg104_with_does_not_release import non_releasing_withs


class PreferContextManager(Rule):
    code = "SG108"
    name = "prefer-context-manager"
    summary = "A resource is released correctly, but by hand instead of a context manager."
    default = False

    def check(self, context: Context) -> None:
        report_judged(context, self.code)
        for found in non_releasing_withs(context.module):
            if found.reclaimed:
                context.report(
                    found.item,
                    f"{found.message}; the garbage collector closes it",
                    related=[(found.item, found.note)],
                )

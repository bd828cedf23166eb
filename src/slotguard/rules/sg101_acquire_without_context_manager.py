"""
## What it does
Finds a connection taken from a pool by a bare call, such as
`conn = await pool.acquire()` or `conn = pool.getconn()`, that no path of
the function gives back to the pool, nor hands to anyone who would.

## Why is this bad?
A connection taken by hand goes back to the pool only if every path that
follows reaches the release: one early `return`, one exception, one
cancelled `await`, and the connection stays checked out. Enough of those and
the pool is empty, every request waits, and PostgreSQL eventually refuses new
connections. The context-manager form releases on every path, by
construction.

A connection that is released on some paths and not on others is reported
by SG201 (a normal exit), SG202 (an exception) or SG203 (a `yield`) instead,
once. The rule stays silent when the connection is handed to someone else
(returned, registered on an exit stack, stored on an object that releases it)
and inside code that implements a context manager or a pool. A bare
acquisition released correctly in a `finally` is the opt-in SG108's.

## Example
```python
async def get_user(pool, user_id):
    conn = await pool.acquire()
    return await conn.fetchrow("select * from users where id = $1", user_id)
```

## Use instead
```python
async def get_user(pool, user_id):
    async with pool.acquire() as conn:
        return await conn.fetchrow("select * from users where id = $1", user_id)
```

## Fix safety
There is no automatic fix: where a connection that is never released should be
released is a decision about its lifetime. A bare acquisition that is
released correctly is the opt-in SG108's, whose fix is the context-manager
form.

## At runtime
`pytest --slotguard-leaks=fail` fails a test that ends with the connection
still out of its pool, naming the bare acquisition that took it; in
production, `slotguard.runtime.install(threshold=30)` logs any connection held
longer, with that stack (README, "Runtime: prove it in your tests").
"""

from __future__ import annotations

from slotguard.rules.base import Context, Rule
from slotguard.rules.common import report_judged


class AcquireWithoutContextManager(Rule):
    code = "SG101"
    name = "acquire-without-context-manager"
    summary = "A pooled connection taken by a bare call is never given back to its pool."

    def check(self, context: Context) -> None:
        report_judged(context, self.code)

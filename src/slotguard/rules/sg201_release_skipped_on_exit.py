"""
## What it does
Follows each connection, session or pool connection along every path of the
function and reports a normal exit that leaves it unreleased: a `return`,
falling off the end, a `break` or `continue` that leaves the iteration that
acquired it, or rebinding the only name that referred to it.

## Why is this bad?
The early `return` added for an edge case, the `continue` that skips a row,
the `break` out of a retry loop: each takes one connection out of the pool for
good. The pool drains slowly, under exactly the traffic that takes the rare
path, and the service stalls hours later far from the cause.

The message names the path: where the resource was acquired and where the
function leaves without releasing it. The rule covers resources the function
does release (or hand off) on some path; a resource it never releases is
reported by SG101, SG102 or SG103.

## Example
```python
async def load(pool, key):
    conn = await pool.acquire()
    if key is None:
        return None          # leaks conn
    row = await conn.fetchrow("select ...", key)
    await pool.release(conn)
    return row
```

## Use instead
```python
async def load(pool, key):
    async with pool.acquire() as conn:
        if key is None:
            return None
        return await conn.fetchrow("select ...", key)
```

## Fix safety
Safe where the region from the acquisition to the release is a single block:
it is wrapped in the context manager. Unsafe where it comes from a project
function that may return something else (`None`, a `(connection, cursor)`
tuple) and the test right after the call tells which: the branch where it is
the resource gets a `finally` that releases it.

## At runtime
`pytest --slotguard-leaks=fail` fails a test that takes the leaking path,
naming the acquisition; the correct form passes.
"""

from __future__ import annotations

from slotguard.rules.base import Context, Rule
from slotguard.rules.common import report_judged


class ReleaseSkippedOnExit(Rule):
    code = "SG201"
    name = "release-skipped-on-exit"
    summary = "A path out of the function leaves an acquired resource unreleased."

    def check(self, context: Context) -> None:
        report_judged(context, self.code)

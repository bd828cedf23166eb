"""
## What it does
Reports an exception that can leave the function while a connection or
session acquired in it is still held: the release is not in a `finally` (or
an `except` that covers the exception), or the acquisition happens before
the `try` that protects it with other code in between.

Every call can raise, and every `await` can also be cancelled:
`asyncio.CancelledError` is not an `Exception`, so `except Exception:` does
not release on cancellation, which is what a client disconnect or a timeout
does to a request handler.

## Why is this bad?
Errors are when pools drain fastest: a failing dependency makes every request
raise, and each one leaves a connection checked out. The service then fails
for a second reason, pool exhaustion, long after the first one is fixed.

## Example
```python
async def save(pool, item):
    conn = await pool.acquire()
    await conn.execute("insert ...", item)   # raises: conn is never released
    await pool.release(conn)
```

## Use instead
```python
async def save(pool, item):
    async with pool.acquire() as conn:
        await conn.execute("insert ...", item)
```

## Fix safety
Safe where the region from the acquisition to the release is a single block:
it is wrapped in the context manager, which releases on exception too.

## At runtime
`pytest --slotguard-leaks=fail` fails a test in which the exception is raised,
naming the acquisition (a pool fixture that terminates its pool at teardown
does not hide it: the connection is reported as never given back).
"""

from __future__ import annotations

from slotguard.rules.base import Context, Rule
from slotguard.rules.common import report_judged


class ReleaseSkippedOnException(Rule):
    code = "SG202"
    name = "release-skipped-on-exception"
    summary = "An exception can leave the function while an acquired resource is held."

    def check(self, context: Context) -> None:
        report_judged(context, self.code)

"""
## What it does
Finds a direct connection to the database, opened with `asyncpg.connect()`,
`psycopg.connect()`, `psycopg2.connect()` or aiopg/aiomysql `connect()`, that
the function never closes and does not hand to anyone who would.

## Why is this bad?
A direct connection is a server process on PostgreSQL. Left open, it holds
one of the server's `max_connections` slots until the client process exits or
the garbage collector closes it, and a busy service runs out of slots long
before either happens.

When the connection is closed on some paths but not on others, the SG2 rules
report the exact path instead.

A psycopg2 connection kept only by the function's own variables is closed by
CPython as soon as the function returns (its destructor closes the socket),
so leaving it open holds no slot past the call: that is reported by the
opt-in SG108, not here.

## Example
```python
async def count_users(dsn):
    conn = await asyncpg.connect(dsn)
    return await conn.fetchval("select count(*) from users")
```

## Use instead
```python
async def count_users(dsn):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("select count(*) from users")
    finally:
        await conn.close()
```

With psycopg 3, `with psycopg.connect(dsn) as conn:` closes the connection.

## Fix safety
There is no automatic fix: where the connection should be closed is a
decision about its lifetime.

## At runtime
`pytest --slotguard-leaks=fail` fails a test that ends with the direct
connection still open, naming the connect call. (A psycopg2 or psycopg
connection that CPython closes as soon as nothing refers to it is no leak at
runtime, and is not reported.)
"""

from __future__ import annotations

from slotguard.rules.base import Context, Rule
from slotguard.rules.common import report_judged


class ConnectionWithoutClose(Rule):
    code = "SG103"
    name = "connection-without-close"
    summary = "A direct connection is never closed."

    def check(self, context: Context) -> None:
        report_judged(context, self.code)

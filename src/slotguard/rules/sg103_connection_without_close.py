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

## Example
```python
def count_users(dsn):
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute("select count(*) from users")
    return cur.fetchone()[0]
```

## Use instead
```python
def count_users(dsn):
    conn = psycopg2.connect(dsn)
    try:
        cur = conn.cursor()
        cur.execute("select count(*) from users")
        return cur.fetchone()[0]
    finally:
        conn.close()
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

from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code, context_manager_form, flows, reclaimed_elsewhere


class ConnectionWithoutClose(Rule):
    code = "SG103"
    name = "connection-without-close"
    summary = "A direct connection is never closed."

    def check(self, context: Context) -> None:
        for flow in flows(context):
            for outcome in flow.outcomes:
                site = outcome.site
                if site.type.kind is not Kind.CONNECTION or outcome.managed:
                    continue
                if reclaimed_elsewhere(context, site):
                    continue
                what = f"`{site.name}`" if site.name else "the connection"
                form = context_manager_form(site)
                advice = f"use `{form}`" if form else "close it in a `finally`"
                context.report(
                    site.node, f"{what} opened with `{code(site.node)}` is never closed; {advice}"
                )

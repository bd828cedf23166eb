"""
## What it does
Finds a `with` statement that looks like cleanup but does not release the
connection it opens:

- `with psycopg2.connect(dsn) as conn:` ends a transaction, it does not close
  the connection;
- `with pool.getconn() as conn:` (psycopg2) does not give the connection back
  to the pool;
- `with Session(engine).no_autoflush as session:` enters the session's
  `no_autoflush` switch, not the session: it is never closed.

## Why is this bad?
The code reads as if the connection were released at the end of the block,
so nobody adds the `close()` or `putconn()` it still needs. Every pass through
the block leaks a connection.

## Example
```python
with psycopg2.connect(dsn) as conn:
    with conn.cursor() as cur:
        cur.execute("select 1")
```

## Use instead
```python
conn = psycopg2.connect(dsn)
try:
    with conn, conn.cursor() as cur:
        cur.execute("select 1")
finally:
    conn.close()
```

or `with contextlib.closing(psycopg2.connect(dsn)) as conn:`.

## Fix safety
Safe where unambiguous: wrapping the call in `contextlib.closing(...)`
closes the connection at the end of the block, which is what the code
already meant.

## At runtime
`pytest --slotguard-leaks=fail` fails a test that ends with the connection the
`with` left checked out (or open), naming the line of the `with`.
"""

from __future__ import annotations

import libcst as cst

from slotguard.analysis.infer import Produced, Scope
from slotguard.model.catalog import SELF_RETURNING_METHODS
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.syntax import unwrap_await


class WithDoesNotRelease(Rule):
    code = "SG104"
    name = "with-does-not-release"
    summary = "A `with` statement looks like cleanup but does not release the connection."

    def check(self, context: Context) -> None:
        module = context.module
        scopes = [module.module_scope, *(f.scope for f in module.functions)]
        for scope in scopes:
            for node in scope.of_type(cst.WithItem):
                assert isinstance(node, cst.WithItem)
                item, _ = unwrap_await(node.item)
                produced = scope.produced(item)
                if produced is not None:
                    resource = produced.type
                    if resource.kind.is_short_lived and not resource.with_releases:
                        context.report(
                            node.item,
                            f"`with {code(item)}` does not release the "
                            f"{resource.kind.value}: {resource.with_note}",
                        )
                    continue
                inline = _inline_acquisition(item, scope)
                if inline is not None:
                    created, entered = inline
                    context.report(
                        node.item,
                        f"`with {code(item)}` enters `{entered}`, not the "
                        f"{created.type.kind.value} created by `{code(created.expression)}`,"
                        " which is never released",
                    )


def _inline_acquisition(item: cst.BaseExpression, scope: Scope) -> tuple[Produced, str] | None:
    """A resource created inline and then only used for one of its attributes:
    ``Session(engine).no_autoflush``, ``Session(engine).begin()``."""
    target = item.func if isinstance(item, cst.Call) else item
    if not isinstance(target, cst.Attribute):
        return None
    if isinstance(item, cst.Call) and target.attr.value in SELF_RETURNING_METHODS:
        # ``engine.connect().execution_options(...)`` is the connection itself.
        return None
    produced = scope.produced(target.value)
    if produced is None or not produced.acquires or not produced.type.kind.is_short_lived:
        return None
    return produced, target.attr.value

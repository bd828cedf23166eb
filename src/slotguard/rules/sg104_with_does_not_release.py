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

from dataclasses import dataclass

import libcst as cst

from slotguard.analysis.infer import ModuleInfo, Produced, Scope
from slotguard.model.catalog import SELF_RETURNING_METHODS
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.syntax import unwrap_await


class WithDoesNotRelease(Rule):
    code = "SG104"
    name = "with-does-not-release"
    summary = "A `with` statement looks like cleanup but does not release the connection."

    def check(self, context: Context) -> None:
        for found in non_releasing_withs(context.module):
            if not found.reclaimed:
                context.report(found.item, found.message, related=[(found.item, found.note)])


@dataclass(frozen=True, slots=True)
class NonReleasingWith:
    """A ``with`` item that looks like cleanup and releases nothing."""

    item: cst.BaseExpression
    message: str
    note: str
    """Why it does not release, for the code frame."""
    reclaimed: bool
    """What it leaves open is closed by CPython once unreferenced (a
    psycopg2 connection): not a leak at runtime, so the opt-in SG108's."""


def non_releasing_withs(module: ModuleInfo) -> list[NonReleasingWith]:
    """Every ``with`` item of the module that does not release what it opens."""
    return module.cached("non-releasing-withs", lambda: _non_releasing_withs(module))


def _non_releasing_withs(module: ModuleInfo) -> list[NonReleasingWith]:
    found = []
    for scope in [module.module_scope, *(f.scope for f in module.functions)]:
        for node in scope.of_type(cst.WithItem):
            assert isinstance(node, cst.WithItem)
            item, _ = unwrap_await(node.item)
            produced = scope.produced(item)
            if produced is not None:
                resource = produced.type
                if resource.kind.is_short_lived and not resource.with_releases:
                    message = f"`with {code(item, 50)}` does not release the {resource.kind.value}"
                    found.append(
                        NonReleasingWith(
                            node.item,
                            message,
                            resource.with_note,
                            resource.reclaimed_when_unreferenced,
                        )
                    )
                continue
            inline = _inline_acquisition(item, scope)
            if inline is not None:
                created, entered = inline
                message = (
                    f"`with` enters `{entered}`, not the {created.type.kind.value} "
                    f"`{code(created.expression, 30)}`, which is never released"
                )
                note = f"`{entered}` is entered; the {created.type.kind.value} stays open"
                found.append(NonReleasingWith(node.item, message, note, reclaimed=False))
    return found


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

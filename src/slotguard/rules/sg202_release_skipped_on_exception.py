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

import libcst as cst

from slotguard.analysis.infer import FunctionInfo
from slotguard.flow.cfg import EdgeKind
from slotguard.flow.held import Leak
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code, point_node, report_leaks


class ReleaseSkippedOnException(Rule):
    code = "SG202"
    name = "release-skipped-on-exception"
    summary = "An exception can leave the function while an acquired resource is held."

    def check(self, context: Context) -> None:
        def describe(leak: Leak, function: FunctionInfo) -> tuple[str, cst.CSTNode, str] | None:
            if leak.via is None:
                return None
            node = point_node(leak.via, function)
            line = context.line(node)
            if isinstance(node, cst.Raise):
                return f"when raising at line {line}", node, "raises here"
            if isinstance(node, cst.MatchCase):
                # Matching a pattern runs code (``__eq__``, ``__match_args__``,
                # guards); the case's body is not what raises.
                pattern = node.pattern
                line = context.line(pattern)
                matching = f"if matching `case {code(pattern, 40)}` at line {line} raises"
                return matching, pattern, "may raise here"
            if leak.via_kind is EdgeKind.CANCEL:
                return (
                    f"if the `await` at line {line} is cancelled (`{code(node, 40)}`)",
                    node,
                    "cancellation leaves here",
                )
            return f"if `{code(node, 40)}` at line {line} raises", node, "may raise here"

        report_leaks(
            context,
            lambda leak: leak.skipped_by_exception and leak.via_kind is not EdgeKind.THROW,
            describe,
        )

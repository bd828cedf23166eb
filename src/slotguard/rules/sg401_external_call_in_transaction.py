"""
## What it does
Finds slow external I/O inside a transaction block: an HTTP request
(httpx, aiohttp, requests, urllib, urllib3), an LLM call (openai,
anthropic), an AWS call (boto3, aioboto3, botocore), an SMTP exchange
(smtplib, aiosmtplib), a subprocess, a gRPC call, or any call named in
`[tool.slotguard.transactions] external-calls`, made inside
`session.begin()`, `session.begin_nested()`, `engine.begin()`,
`conn.transaction()` (asyncpg, psycopg 3, databases) or Django's
`transaction.atomic()` (as a `with` block or as a decorator).

Calls through clients count (`client = httpx.AsyncClient()`,
`async with aiohttp.ClientSession() as http`, `llm = AsyncOpenAI()`), and so
do calls of functions of the same module that make such calls themselves,
followed a few calls deep; the message names the chain. Work scheduled to run
later (`asyncio.create_task(...)`, `background_tasks.add_task(...)`) is not
counted: it does not run inside the block.

## Why is this bad?
A transaction keeps its connection checked out, and its row locks held, until
it commits. While the payment provider or the model takes its time, the
connection sits idle in transaction: no one else can use it, and other
transactions wait on its locks. Every connection of the pool is eventually
released, yet under load all of them are waiting on the slow service at once
and the requests that only need the database time out.

## Example
```python
async def charge(session: AsyncSession, order_id: int, token: str) -> None:
    async with session.begin():
        order = await session.get(Order, order_id, with_for_update=True)
        response = await payments.post("/charges", json={"source": token})
        order.status = "paid"
```

## Use instead
```python
async def charge(session: AsyncSession, order_id: int, token: str) -> None:
    async with session.begin():
        order = await session.get(Order, order_id, with_for_update=True)
        order.status = "charging"
    response = await payments.post("/charges", json={"source": token})
    async with session.begin():
        order.status = "paid"
```

## Fix safety
There is no automatic fix: moving the call out of the transaction changes
what the transaction guarantees, so the new shape is one only the author can
design.

## At runtime
With `idle-threshold` in `[tool.slotguard.runtime]`, the pytest plugin reports
a transaction idle past it; `slotguard.runtime.install(threshold=30)` logs,
while it waits, where the code holding the transaction waits: the external
call.
"""

from __future__ import annotations

import libcst as cst

from slotguard.analysis.ownership import in_a_test
from slotguard.analysis.slow_work import RegionKind, SlowCall, SlowKind, SlowWork, slow_work
from slotguard.model.external import slow_calls
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code


class ExternalCallInTransaction(Rule):
    code = "SG401"
    name = "external-call-in-transaction"
    summary = "Slow external I/O runs inside a transaction block."

    def check(self, context: Context) -> None:
        work = slow_work_for(context)
        for function in (None, *context.module.functions):
            if in_a_test(function):
                continue
            for slow in work.in_function(function):
                if slow.kind is not SlowKind.EXTERNAL:
                    continue
                region = slow.innermost(RegionKind.TRANSACTION)
                if region is None:
                    continue
                opened = context.line(region.node)
                context.report(
                    slow.node,
                    f"{slow_phrase(context, slow)} inside the transaction opened at line {opened}",
                    related=[
                        (
                            region.node,
                            "the transaction opens here; its connection stays idle in "
                            "transaction until the call returns: make the call before it "
                            "begins or after it ends",
                        ),
                        *chain_related(context, slow),
                    ],
                )


def slow_work_for(context: Context) -> SlowWork:
    """The module's slow work, with the configured external calls."""
    return slow_work(context.module, slow_calls(context.settings.config.external_calls))


def callee(node: cst.BaseExpression) -> str:
    """A call as a message names it: whole when short (``asyncio.sleep(0.5)``),
    else by what it calls (``provider.post(...)``)."""
    whole = code(node, limit=_SHORT + 1)
    if len(whole) <= _SHORT:
        return whole
    if isinstance(node, cst.Call):
        return f"{code(node.func, 36)}({'...' if node.args else ''})"
    if isinstance(node, cst.Await):
        return f"await {code(node.expression, 36)}"
    return code(node, 40)


_SHORT = 40

_VERBS = {
    SlowKind.SLEEP: "sleeps",
    SlowKind.WAIT: "waits without a timeout",
}


def slow_phrase(context: Context, slow: SlowCall) -> str:
    """The start of a message: "`provider.post(...)` (an HTTP request) runs",
    or, through helpers, "`refund(...)` makes an HTTP request" (where it
    does, the code frame shows: ``chain_related``)."""
    subject = f"`{callee(slow.node)}`"
    if not slow.chain:
        if slow.kind is SlowKind.EXTERNAL:
            return f"{subject} ({slow.what}) runs"
        return f"{subject} {_VERBS[slow.kind]}"
    if slow.kind is SlowKind.EXTERNAL:
        return f"{subject} makes {slow.what}"
    return f"{subject} {_VERBS[slow.kind]}"


def chain_related(context: Context, slow: SlowCall) -> list[tuple[cst.CSTNode, str]]:
    """The slow call at the end of a chain of helpers, for the code frame."""
    if not slow.chain:
        return []
    through = [f"`{hop.function.name}()`" for hop in slow.chain[1:]]
    via = f", through {', '.join(through)}" if through else ""
    return [(slow.origin, f"{slow.what} in `{slow.chain[-1].function.name}()`{via}")]

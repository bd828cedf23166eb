"""
## What it does
Finds a generator or context-manager function (a FastAPI dependency such as
`get_db`, a `@contextmanager`) that yields while holding a connection or
session and releases it after the `yield` outside a `finally`.

## Why is this bad?
Code after a `yield` runs only if the consumer resumes the generator
normally. When the request handler raises, the framework throws the exception
into the generator at the `yield`; when the consumer stops early, the
generator is closed with `GeneratorExit` at the `yield`. Either way a release
written after the `yield`, outside `finally`, never runs, and every failed
request leaks a session.

## Example
```python
def get_db():
    db = SessionLocal()
    yield db
    db.close()
```

## Use instead
```python
def get_db():
    with SessionLocal() as db:
        yield db
```

## Fix safety
Safe: the release moves into a `finally` (or a `with`) that runs on exactly
the paths it ran on before, plus the exceptional ones.

## At runtime
`pytest --slotguard-leaks=fail` fails a test that drives the generator to the
leaking path, naming the line that acquired (or created the session) inside
the generator.
"""

from __future__ import annotations

import libcst as cst

from slotguard.analysis.infer import FunctionInfo
from slotguard.flow.cfg import EdgeKind
from slotguard.flow.held import Leak
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import point_node, report_leaks


class YieldWithoutFinally(Rule):
    code = "SG203"
    name = "yield-without-finally"
    summary = "A generator yields while holding a resource it releases outside `finally`."

    def check(self, context: Context) -> None:
        def describe(leak: Leak, function: FunctionInfo) -> tuple[str, cst.CSTNode, str] | None:
            if leak.via is None:
                return None
            node = point_node(leak.via, function)
            return (
                f"if the consumer stops or raises at the `yield` on line {context.line(node)}"
                "; release it in a `finally`",
                node,
                "suspends here holding it",
            )

        report_leaks(
            context,
            lambda leak: leak.skipped_by_exception and leak.via_kind is EdgeKind.THROW,
            describe,
        )

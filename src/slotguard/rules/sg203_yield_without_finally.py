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

from slotguard.rules.base import Context, Rule
from slotguard.rules.common import report_judged


class YieldWithoutFinally(Rule):
    code = "SG203"
    name = "yield-without-finally"
    summary = "A generator yields while holding a resource it releases outside `finally`."

    def check(self, context: Context) -> None:
        report_judged(context, self.code)

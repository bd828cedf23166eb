"""
## What it does
Finds an ORM session or an engine connection created by a bare call and not
entered: `db = SessionLocal()`, `session = AsyncSession(engine)`,
`conn = await engine.connect()`.

## Why is this bad?
A SQLAlchemy session checks a connection out of the engine's pool at its
first query and keeps it until it is closed. A session that is never closed,
or closed only on the happy path, keeps its connection checked out until the
garbage collector happens to find it, and SQLAlchemy only warns about it at
that point, far from the code that leaked it. The context-manager form closes
the session on every path.

The rule stays silent when the session is handed to someone else (returned,
registered on an exit stack, stored on an object that closes it) and inside
code that implements a context manager or a dependency provider.

## Example
```python
def list_users(engine):
    session = Session(engine)
    users = session.scalars(select(User)).all()
    session.close()
    return users
```

## Use instead
```python
def list_users(engine):
    with Session(engine) as session:
        return session.scalars(select(User)).all()
```

## Fix safety
Safe when the `close()` sits in the matching `finally`, or ends the block
that created the session.

## At runtime
`pytest --slotguard-leaks=fail` fails a test that ends with the session's
connection still out, naming the statement that took it and the line that
created the session.
"""

from __future__ import annotations

from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, Rule
from slotguard.rules.sg101_acquire_without_context_manager import report_bare_acquisitions


class SessionWithoutContextManager(Rule):
    code = "SG102"
    name = "session-without-context-manager"
    summary = "An ORM session or engine connection is created by a bare call and not entered."

    def check(self, context: Context) -> None:
        report_bare_acquisitions(context, frozenset([Kind.SESSION, Kind.ENGINE_CONNECTION]))

"""
## What it does
Finds an ORM session or an engine connection created by a bare call
(`db = SessionLocal()`, `session = AsyncSession(engine)`,
`conn = await engine.connect()`) that no path of the function closes, nor
hands to anyone who would.

## Why is this bad?
A SQLAlchemy session checks a connection out of the engine's pool at its
first query and keeps it until it is closed. A session that is never closed,
or closed only on the happy path, keeps its connection checked out until the
garbage collector happens to find it, and SQLAlchemy only warns about it at
that point, far from the code that leaked it. The context-manager form closes
the session on every path.

A session closed on some paths and not on others is reported by SG201,
SG202 or SG203 instead, once. The rule stays silent when the session is
handed to someone else (returned, registered on an exit stack, stored on an
object that closes it), when it is bound to a connection the function did
not open (`Session(bind=conn)`: it checks nothing out of the pool), and inside
code that implements a context manager or a dependency provider. A session
closed correctly by hand is the opt-in SG108's.

## Example
```python
def list_users(engine):
    session = Session(engine)
    return session.scalars(select(User)).all()
```

## Use instead
```python
def list_users(engine):
    with Session(engine) as session:
        return session.scalars(select(User)).all()
```

## Fix safety
The fix is unsafe: it enters the session or connection in a `with` from its
creation to the last statement of its block that uses it, or uses what was
computed from it (`contextlib.closing(...)` where the project may run
SQLAlchemy before 1.4, whose sessions are not context managers). It is then
closed there, which rolls back what it left uncommitted, as the garbage
collector would have, later. The fix declines when something would still use
the session, or an object loaded through it, after that point (a closed
session detaches its objects: a lazy attribute raises
`DetachedInstanceError`), or when either leaves the function meanwhile
(returned, yielded, stored, captured); the `fix` summary says which. The
value of a column of a mapped class, read in the block (`order.total`), is
plain data, which may be used after it. A
session from a project function that may return something else (`None`, a
tuple) is closed in a `finally` only where the test right after the call
shows it is the session (`if db is None: return`). A bare
acquisition that is released correctly is the opt-in SG108's, whose fix is
the context-manager form.

## At runtime
`pytest --slotguard-leaks=fail` fails a test that ends with the session's
connection still out, naming the statement that took it and the line that
created the session.
"""

from __future__ import annotations

from slotguard.rules.base import Context, Rule
from slotguard.rules.common import report_judged


class SessionWithoutContextManager(Rule):
    code = "SG102"
    name = "session-without-context-manager"
    summary = "An ORM session or engine connection created by a bare call is never closed."

    def check(self, context: Context) -> None:
        report_judged(context, self.code)

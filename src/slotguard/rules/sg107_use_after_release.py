"""
## What it does
Finds a session or connection used after it was released: after
`session.close()`, after `pool.release(conn)` or `pool.putconn(conn)`, or
after the `with` block that bound it ended.

## Why is this bad?
A closed SQLAlchemy session can be used again, silently: its next query
begins a new transaction and checks a new connection out of the pool. The
code that closed it believed the session done, so nothing closes it again,
and that connection stays checked out until the garbage collector finds the
session. A connection given back to its pool belongs to the next borrower:
using it fails, or worse, interferes with someone else's transaction.

## Example
```python
def rename(engine, user_id, name):
    with Session(engine) as session:
        user = session.get(User, user_id)
    user.name = name
    session.commit()        # a new transaction, on a new connection
```

## Use instead
```python
def rename(engine, user_id, name):
    with Session(engine) as session:
        user = session.get(User, user_id)
        user.name = name
        session.commit()
```

## Fix safety
There is no automatic fix: whether the work belongs inside the block or
needs a session of its own is a decision about the unit of work.

## At runtime
`slotguard.runtime` (the pytest plugin, `--slotguard-leaks=fail`) reports a
test that ends with a connection still checked out, with the line that took
it: the second checkout here.
"""

from __future__ import annotations

from slotguard.flow.released import uses_after_release
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code


class UseAfterRelease(Rule):
    code = "SG107"
    name = "use-after-release"
    summary = "A session or connection is used after it was closed or released."

    def check(self, context: Context) -> None:
        for found in uses_after_release(context.module):
            released = context.line(found.release)
            if found.by_block:
                when = f"after its `with` block ended (line {released})"
                label = "the block ends here and releases it"
            else:
                verb = "closed" if "close" in code(found.release, 80) else "released"
                when = f"after it was {verb} at line {released}"
                label = f"{verb} here"
            context.report(
                found.use,
                f"`{found.name}` is used {when}: `{code(found.use, 30)}`",
                related=[(found.release, label)],
            )

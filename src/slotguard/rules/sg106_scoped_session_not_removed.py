"""
## What it does
Finds a unit of work (a request handler or middleware, a Celery, arq or
Dramatiq task, a scheduled job, a thread, a command, a worker loop) that uses
a `scoped_session` or `async_scoped_session` registry and does not call
`remove()` at its end on every path, where no teardown hook removes it
either: Flask's `teardown_appcontext`/`teardown_request`, a Celery
`task_postrun` receiver or a task base class's `after_return`, a decorator
whose wrapper removes it in a `finally`. Also a registry created per call (an
`async_scoped_session(..., scopefunc=current_task)` made for one request)
that is never removed.

## Why is this bad?
A registry gives each thread (or task) its own session and keeps it until
`remove()`. A unit of work that ends without it leaves its session open, with
the connection its last query checked out and often a transaction idle on it:
the next unit on the same thread inherits a stale session, and a thread or
task that ends takes it nowhere. A pool of worker threads then holds one
connection per thread for good, and a Celery worker that runs tasks for days
leaks one per failed task.

## Example
```python
Session = scoped_session(sessionmaker(bind=engine))


@celery.task
def sync_orders():
    for order in Session.query(Order).filter_by(synced=False):
        push(order)
    Session.commit()
```

## Use instead
```python
@celery.task
def sync_orders():
    try:
        for order in Session.query(Order).filter_by(synced=False):
            push(order)
        Session.commit()
    finally:
        Session.remove()
```

or a `task_postrun` receiver (Flask: a `teardown_appcontext` hook) that calls
`Session.remove()` for every unit.

## Fix safety
The fix is unsafe: it calls `remove()` in a `finally` around the unit of
work (a task, job, thread or command: the function; a worker loop: each
turn), or, for a Flask application's requests, in a new
`@app.teardown_appcontext` hook. The unit's session is then closed when it
ends, where the next unit of its thread used to inherit it. The fix
declines when what the unit loads through the registry leaves it (a
returned result, a stored object: the closed session detaches it), for
requests of an application that is not a Flask one of the module, and for
a registry made for one call.

## At runtime
`slotguard.runtime` (the pytest plugin, `--slotguard-leaks=fail`) reports a
test that ends with the registry's connection still checked out, with the
line that took it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from slotguard.analysis.registries import registries
from slotguard.diagnostic import Diagnostic
from slotguard.facts import Fact
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import report_judged

if TYPE_CHECKING:
    from slotguard.settings import Settings

_USE = "use"
_REMOVER = "remover"


class ScopedSessionNotRemoved(Rule):
    code = "SG106"
    name = "scoped-session-not-removed"
    summary = "A unit of work uses a scoped_session registry and never removes it."

    def check(self, context: Context) -> None:
        report_judged(context, self.code)
        found = registries(context.module)
        for remover in found.removers:
            context.note(_REMOVER, None, remover.registry, remover.by)
        for use in found.uses:
            context.note(
                _USE,
                use.node,
                use.registry,
                use.shown,
                use.unit.value,
                use.unit.torn_down_by_hooks,
                use.function.name,
                use.decorators,
            )

    @classmethod
    def check_run(cls, facts: Sequence[Fact], settings: Settings) -> list[Diagnostic]:
        hooked = {f.value[0] for f in facts if f.topic == _REMOVER and f.value[1] == "hook"}
        decorated = {
            (f.value[0], f.value[1]) for f in facts if f.topic == _REMOVER and f.value[1] != "hook"
        }
        found = []
        for fact in facts:
            if fact.topic != _USE or fact.suppressed:
                continue
            registry, shown, unit, hooks_run, function, decorators = fact.value
            assert isinstance(registry, str) and isinstance(decorators, tuple)
            if hooks_run and registry in hooked:
                continue
            if any((registry, decorator) in decorated for decorator in decorators):
                continue
            found.append(
                Diagnostic(
                    cls.code,
                    cls.name,
                    f"the {unit} `{function}` uses `{shown}` "
                    f"without `{shown}.remove()` in a `finally`",
                    fact.path,
                    fact.span,
                )
            )
        return found

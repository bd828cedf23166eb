"""
## What it does
Finds a pool or engine that nothing closes: no `close()`/`dispose()` on any
shutdown path of the application or process that created it. Shutdown paths
are a FastAPI/Starlette/Litestar lifespan (after its `yield`) or shutdown
handler, aiohttp `on_cleanup` and `cleanup_ctx`, Sanic `after_server_stop`,
`atexit.register(engine.dispose)`, an exit stack
(`stack.push_async_callback(engine.dispose)`), `async with pool:`, a
`finally` in the function that created it, or a `close`/`aclose`/`__exit__`
method of the class that keeps it.

A pool is judged by where it is kept. One the creating function keeps in a
local name must be closed by that function, or handed on (returned, yielded
to a caller, passed to an object that keeps it). One kept in a module
global, on application state (`app.state.engine`) or on an instance
(`self.pool`) may be closed anywhere: in the same module, or in another
module of the files checked together. Each module settles the pools it
closes, by a key both sides compute (the qualified name of the global,
`app.state.<name>` for the application whose shutdown hook closes it, the
attribute name); a finding stands only if no module of the run settled its
pool, so `engine` created in `app/db.py` and disposed in `app/main.py`'s
lifespan is not reported when both files are checked. A pool that keeps no
connections (SQLAlchemy `NullPool`) is not reported. Pools created in a
startup handler are SG502's.

A pool kept in a module global (`engine = create_engine(URL)` in `db.py`, or
`global engine` in a setup function) is reported only when the files checked
show the long-lived application it lives in: a module that registers
startup, shutdown or lifespan hooks (or an `atexit` hook). A library module,
a `db.py` checked on its own by a pre-commit run, or a script whose engine
ends with the process, says nothing about a shutdown path, so it is left
alone rather than guessed at. Pools a test function creates, and those of
modules under a test harness that disposes them (SQLAlchemy's
`sqlalchemy.testing`), end with the test.

## Why is this bad?
An unclosed pool keeps its connections open until the process dies. Every
reload, rolling deploy, worker restart and test session leaves them behind
until PostgreSQL notices the peer is gone; queries in flight are cut off
instead of finishing; and a server near `max_connections` runs out of slots
while old and new processes overlap. A pool created per call and never
closed leaks a whole pool each time.

## Example
```python
@asynccontextmanager
async def lifespan(app):
    app.state.engine = create_async_engine(URL)
    worker = asyncio.create_task(poll_jobs())
    yield
    worker.cancel()
```

## Use instead
```python
@asynccontextmanager
async def lifespan(app):
    app.state.engine = create_async_engine(URL)
    worker = asyncio.create_task(poll_jobs())
    try:
        yield
    finally:
        worker.cancel()
        await app.state.engine.dispose()
```

## Fix safety
The fix is unsafe, and only for a pool the function keeps in a local name:
it is entered with its own `async with`/`with` where that closes it
(`async with asyncpg.create_pool(...) as pool`), else closed in a `finally`
(`engine.dispose()`), from its creation to the last statement of its block
that uses it; its connections are then closed there, where they used to
stay open until the process ended. It declines when the pool is used after
that point or leaves the function meanwhile. A pool kept in a global, on
application state or on an object has no automatic fix: where it should be
closed depends on how the application shuts down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.analysis.ownership import in_a_test, reclaimed_kinds
from slotguard.analysis.pools import (
    Lifecycle,
    PoolSite,
    StorageKind,
    closing_key,
    lifecycle,
    settled_keys,
)
from slotguard.diagnostic import Diagnostic
from slotguard.facts import Fact
from slotguard.model.lifecycle import PROCESS_HOOKS, Phase
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.rules.sg502_startup_without_shutdown import startup_hook
from slotguard.syntax import dotted_name

if TYPE_CHECKING:
    from slotguard.settings import Settings

_MODULE_POOL = "module-pool"
_CLOSED = "closed"
_ENTRY = "entry"


class PoolNeverClosed(Rule):
    code = "SG501"
    name = "pool-never-closed"
    summary = "A pool or engine is never closed on the shutdown path of what created it."

    def check(self, context: Context) -> None:
        found = lifecycle(context.module)
        for settled in settled_keys(found):
            context.settle(settled)
        reclaimed = reclaimed_kinds(context.module)
        for site in found.sites:
            if not site.keeps_connections or startup_hook(found.hooks_of(site.function)):
                continue
            if site.type.kind in reclaimed or in_a_test(site.function):
                continue
            key = closing_key(found, site, _application(found, site.function))
            if key is None:
                continue
            if site.storage.kind is StorageKind.GLOBAL:
                # Judged after the run, once it is known whether the files
                # checked show a process that ends (``check_run``).
                context.note(_MODULE_POOL, site.node, key, _message(found, site))
                continue
            local = site.storage.kind is StorageKind.LOCAL
            context.report(site.node, _message(found, site), pending=None if local else key)
        for key in found.closes:
            context.note(_CLOSED, None, key)
        if _has_entry_point(context.module, found):
            context.note(_ENTRY, None)

    @classmethod
    def check_run(cls, facts: Sequence[Fact], settings: Settings) -> list[Diagnostic]:
        if not any(fact.topic == _ENTRY for fact in facts):
            return []
        closed = {fact.value[0] for fact in facts if fact.topic == _CLOSED}
        return [
            Diagnostic(cls.code, cls.name, str(fact.value[1]), fact.path, fact.span)
            for fact in facts
            if fact.topic == _MODULE_POOL and not fact.suppressed and fact.value[0] not in closed
        ]


def _has_entry_point(module: ModuleInfo, found: Lifecycle) -> bool:
    """Whether the module shows a long-lived application or process with a
    shutdown path (a hook registration, ``atexit.register``), unlike a
    library module or a plain script."""
    if any(found.hooks.values()):
        return True
    for call in module.module_scope.of_type(cst.Call):
        assert isinstance(call, cst.Call)
        name = dotted_name(call.func)
        if name is not None and module.qualify(name) in PROCESS_HOOKS:
            return True
    return False


def _application(found: Lifecycle, function: FunctionInfo | None) -> str | None:
    """The named application whose hook the function is, or is nested in."""
    while function is not None:
        for hook in found.hooks_of(function):
            if hook.application is not None:
                return hook.application
        function = function.parent
    return None


def _message(found: Lifecycle, site: PoolSite) -> str:
    function = site.function
    phase = found.phase_of(function)
    if function is None:
        where = "at module level"
    elif phase is Phase.LIFESPAN:
        where = f"in the lifespan `{function.name}`"
    else:
        where = f"in `{function.name}`"
    return (
        f"`{site.shown}` is created with `{code(site.call)}` {where} and never closed: no "
        f"`{site.release_call}` runs on a shutdown path in the files checked, so its "
        f"connections stay open until the process exits; {_advice(site, phase)}"
    )


def _advice(site: PoolSite, phase: Phase | None) -> str:
    kind = site.storage.kind
    if phase is Phase.LIFESPAN:
        return "close it after the lifespan's `yield`, in a `finally`"
    if kind is StorageKind.LOCAL:
        return "close it in a `finally` (or enter it with `with`/`async with`), or return it"
    if kind is StorageKind.ATTRIBUTE:
        return "close it in the owner's `close()`/`aclose()` or `__exit__`/`__aexit__`"
    return (
        "close it in the application's shutdown hook or lifespan, or register the close "
        "with `atexit` or an exit stack"
    )
